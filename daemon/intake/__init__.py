"""Intake: from a file in the drop zone to parts ready to submit. Claiming, validation, splitting,
packing small inputs, refitting parts to a token limit, reports beside rejected inputs, and the
quarantine of a step that keeps failing. Imports the foundation and state/.
"""
