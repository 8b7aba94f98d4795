package credentials_test

import (
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/credentialstest"
	"github.com/specguard/specguard/security"
)

func TestMemoryStores(t *testing.T) {
	credentialstest.RunAccounts(t, func(*testing.T) credentials.Accounts { return credentials.NewMemoryAccounts(nil) })
	credentialstest.RunKeys(t, func(*testing.T) (security.KeyRecords, string) { return security.NewMemoryKeyRecords(nil), "owner" })
}
