package security

// MemoryRecords is how many records (families, sessions, key marks and
// revocations, account states) m holds, expired or not.
func MemoryRecords(m *MemoryStore) int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.families) + len(m.sessions) + len(m.marks) + len(m.accounts)
}
