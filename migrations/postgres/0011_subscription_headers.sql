-- Static request headers a subscription's receiver asks for: a JSON array of [name, value]
-- pairs. Values may be secrets: the API shows the names only.
ALTER TABLE subscriptions ADD COLUMN headers TEXT NOT NULL DEFAULT '[]';
