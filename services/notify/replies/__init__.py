"""Two-way SMS: what a reply means, which booking it is about, the answer, and the event it makes."""
