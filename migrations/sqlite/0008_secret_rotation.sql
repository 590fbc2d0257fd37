-- Secret rotation: after a rotation, deliveries are signed with the new secret and, until
-- `previous_secret_until_us`, with the previous one too, so that receivers can switch over.
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT;
ALTER TABLE subscriptions ADD COLUMN previous_secret_until_us INTEGER;
