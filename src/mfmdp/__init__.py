"""mfmdp: MF-MDP (mean-field MDP) for long-horizon social simulation."""

__version__ = "0.1.0"
