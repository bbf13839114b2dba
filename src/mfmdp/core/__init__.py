"""The shared vocabulary at the bottom of the package: every stage imports it, it imports no stage.

- `mfmdp.core.schema`: the 8 label dimensions (STATES, DIMENSIONS, BEHAVIORS) and `Labels`.
- `mfmdp.core.records`: the typed event records (Event, Response, Profile, Signal).
- `mfmdp.core.atomic`: writes that never leave a half-written file behind.
- `mfmdp.core.spec`: the base of the typed spec objects (annotator, encoder, LLM backend, summariser).
"""
