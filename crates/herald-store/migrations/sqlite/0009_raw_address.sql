-- A phone number as the uploaded file wrote it, when that differs from its E.164 form, so that a
-- recipient stored under a misread number can be found (`herald doctor phones`). NULL for
-- emails, for numbers written in E.164, and for recipients imported before this migration.
ALTER TABLE recipients ADD COLUMN raw_address TEXT;
