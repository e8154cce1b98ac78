"""Results: downloads verified, unpacked and merged in input order; outcomes, summary.json, usage
and failures; ending a job early. Imports the floors below it (foundation, state/, intake/, service/).
"""
