-- What each order request asked for (SHA-256 of its parameters), so the
-- same nonce sent again with other parameters is refused (409) instead of
-- answered with the first order. Orders stored before this have none and
-- are compared by kind only, as they were.
ALTER TABLE orders ADD COLUMN request_sha256 TEXT;
