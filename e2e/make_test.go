package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/specguard/specguard/internal/redistest"
)

// Ctrl-C on `make run` stops the server gracefully and make says nothing
// more: no "make: *** Error 1" after a clean shutdown. The signal goes to
// the whole foreground process group, as a terminal sends it.
func TestMakeRunStopsQuietlyOnCtrlC(t *testing.T) {
	need(t, "make")
	cmd := exec.Command("make", "--no-print-directory", "run")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "SPECGUARD_DATA_DIR="+t.TempDir(), fmt.Sprintf("SPECGUARD_ADDR=127.0.0.1:%d", redistest.FreePort(t)), "SPECGUARD_ADMIN_ADDR=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	timeout := time.After(5 * time.Minute) // the first build compiles everything
	for listening := false; !listening; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended before listening:\n%s", strings.Join(got, "\n"))
			}
			got = append(got, l)
			listening = strings.Contains(l, `"listening"`)
		case <-timeout:
			t.Fatalf("make run did not listen within 5 minutes:\n%s", strings.Join(got, "\n"))
		}
	}
	if !strings.Contains(got[0], "building bin/blog") {
		t.Errorf("make run says nothing before it compiles; first line %q", got[0])
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		got = append(got, l)
	}
	_ = cmd.Wait()
	all := strings.Join(got, "\n")
	if !strings.Contains(all, `"stopped"`) {
		t.Errorf("the server did not stop gracefully:\n%s", all)
	}
	if strings.Contains(all, "make: ***") {
		t.Errorf("make reports an error after a clean shutdown:\n%s", all)
	}
}

// A make target that needs no scratch directory makes none: the Makefile
// used to run mktemp at every invocation, leaving one behind each time.
func TestMakeLeavesNoTempDirs(t *testing.T) {
	need(t, "make")
	tmp := t.TempDir()
	cmd := exec.Command("make", "-n", "run", "lint", "generate")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("make left %v in TMPDIR", left)
	}
}

// The binary refuses a misspelled variable, naming the one it was meant to
// be, before it starts anything.
func TestMisspelledVariableStopsServe(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "SPECGUARD_DATA_DIR="+t.TempDir(), "SPECGUARD_ADDR=127.0.0.1:0", "SPECGUARD_REDIS=redis://127.0.0.1:6379/0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "SPECGUARD_REDIS is not a setting (did you mean SPECGUARD_REDIS_URL?)") {
		t.Fatalf("serve with SPECGUARD_REDIS: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "listening") {
		t.Error("it started listening")
	}
}
