-- The source texts: one row per collected article. The pipeline exports id and title + body
-- (TOPIC_PIPELINE_TEXT_COLUMN=title,body) of the articles published in the run's window
-- (TOPIC_PIPELINE_DATE_COLUMN=published_at with TOPIC_PIPELINE_WINDOW_DAYS or _START/_END).
CREATE TABLE IF NOT EXISTS articles (
    id           BIGINT PRIMARY KEY,
    title        TEXT NOT NULL,
    body         TEXT,
    source       TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL
);
-- The window filter is a range scan on publication time.
CREATE INDEX IF NOT EXISTS articles_published_at_idx ON articles (published_at);
