"""Treatment courses: a plan of sessions under one template, each session an ordinary booking."""
