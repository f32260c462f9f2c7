"""Scene classification experiments of report 002."""
