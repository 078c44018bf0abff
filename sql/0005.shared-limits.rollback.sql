DROP TABLE limit_processes;
DROP TABLE limit_levels;
DROP TABLE limit_events;
