-- Content Credentials are signed per model (on unless a model opts out); permanent URLs are a
-- project's choice (on unless it opts out). Images remember their C2PA manifest's label.
ALTER TABLE models ADD COLUMN content_credentials boolean NOT NULL DEFAULT true;
ALTER TABLE projects ADD COLUMN permanent_urls boolean NOT NULL DEFAULT true;
ALTER TABLE output_images ADD COLUMN manifest_label text NOT NULL DEFAULT '';
