-- Subscription filters: the CloudEvents Subscriptions API's array of dialect objects, as given
-- (JSON text); an event is delivered when every one of them is true.
ALTER TABLE subscriptions ADD COLUMN filters TEXT NOT NULL DEFAULT '[]';
