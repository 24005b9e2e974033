"""A clinic's resources (infusion chairs, rooms): their catalog, staff API and the time bookings hold."""
