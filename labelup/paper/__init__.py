"""The paper's results (section IV): Tables I-VI, figures and claims regenerated on a run, and `labelup reproduce`."""
