-- maestro-git mirror schema, version 4: an erased address may carry several names.
--
-- Version 3 kept one name hash per address, so erasing an address again under another name
-- replaced the first name, and `maestro rebuild` then wrote commits under that first name
-- (with another address) in the clear. Now a row is one (address, name) pair of a subject;
-- every row of an address has the same pseudonym (it derives from the address).
ALTER TABLE gdpr_erasures DROP CONSTRAINT gdpr_erasures_pkey;
CREATE UNIQUE INDEX gdpr_erasures_identity ON gdpr_erasures (email_sha256, coalesce(name_sha256, ''));
