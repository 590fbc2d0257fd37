-- The delivery log of one event to one subscription (the console's event detail).
CREATE INDEX delivery_attempts_event ON delivery_attempts (subscription_id, event_id, seq);
