"""Who is ready for their visit: the day-before safety check and the staff day sheet."""
