package store

// PendingUpgrade reports whether a migration left the one-time upgrade name to do.
func (t *tx) PendingUpgrade(name string) (bool, error) {
	ok, err := t.exists(`SELECT 1 FROM upgrades WHERE name = ?`, name)
	if err != nil {
		return false, internal(err, "read upgrade %s", name)
	}
	return ok, nil
}

// FinishUpgrade records that the upgrade name is done.
func (t *tx) FinishUpgrade(name string) error {
	if _, err := t.exec(`DELETE FROM upgrades WHERE name = ?`, name); err != nil {
		return internal(err, "finish upgrade %s", name)
	}
	return nil
}
