-- pretix refuses to annul a check-in more than 15 minutes old (issue 24):
-- an undone check-in it would not annul is kept with what pretix said, so
-- the box never shows as annulled what pretix still counts.
ALTER TABLE pretix_annulled ADD COLUMN refused TEXT;
