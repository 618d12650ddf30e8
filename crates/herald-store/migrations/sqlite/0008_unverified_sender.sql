-- An inbound email whose From the trusted MX did not authenticate (no `Authentication-Results`
-- from its authserv-id with dmarc, or aligned spf or dkim, passing) is kept and shown, marked
-- here, but never attributed: it makes no recipient `replied` and moves no conversation's
-- campaign. Every other message (SMS arrives signed by Twilio; outbound ones are Herald's) is 0.
ALTER TABLE messages ADD COLUMN unverified_sender INTEGER NOT NULL DEFAULT 0
    CHECK (unverified_sender IN (0, 1));
