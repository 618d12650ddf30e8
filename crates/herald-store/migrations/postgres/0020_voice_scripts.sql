-- What a call says instead of the SMS body: an answer variant's voice script (a template like
-- the body), NULL when calls say the body.
ALTER TABLE answer_variants ADD COLUMN voice TEXT;

-- How a voice campaign's calls speak: Twilio's `<Say voice>` and `<Say language>`, and the
-- prompts said around the message. NULL takes the default (the campaign's language, the
-- prompts in it).
ALTER TABLE campaigns ADD COLUMN voice TEXT;
ALTER TABLE campaigns ADD COLUMN spoken_language TEXT;
ALTER TABLE campaigns ADD COLUMN press_one_prompt TEXT;
ALTER TABLE campaigns ADD COLUMN agent_unavailable TEXT;
