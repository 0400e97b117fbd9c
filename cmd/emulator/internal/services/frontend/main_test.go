package frontend

import (
	"testing"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
