"""What starts runs without a person: schedules, events, file sensors, monitors, the daemon."""
