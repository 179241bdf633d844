-- Each step of a run as it goes (id, status, start, duration), written by its worker as
-- steps start and end, for the dashboard and the API. JSON, like output_images.
ALTER TABLE runs ADD COLUMN steps TEXT NOT NULL DEFAULT '[]';
-- The dashboard asks which runs changed since it last looked.
CREATE INDEX runs_updated ON runs (last_updated_time);
