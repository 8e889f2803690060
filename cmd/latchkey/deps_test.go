package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeps checks what the latchkey binary links: no test helpers, no
// debug endpoints that would expose internals, no logging frameworks
// beside log/slog.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{
		"testing", "github.com/google/go-cmp", "github.com/rogpeppe/go-internal",
		"net/http/pprof", "expvar", "github.com/sirupsen/logrus", "github.com/pkg/errors",
		"github.com/chromedp", // browser tests only
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the binary links %s", dep)
			}
		}
	}
}

// TestPackageDocs checks that every package has exactly one package doc
// comment, in the form "Package NAME ...".
func TestPackageDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		checkPackageDoc(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkPackageDoc(t *testing.T, dir string) {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for name, pkg := range pkgs {
		var docs []string
		for file, f := range pkg.Files {
			if f.Doc != nil {
				docs = append(docs, file)
				want := "Package " + name + " "
				if name == "main" {
					want = "Command "
				}
				if !strings.HasPrefix(f.Doc.Text(), want) {
					t.Errorf("%s: package doc does not start with %q", file, want)
				}
			}
		}
		if len(docs) != 1 {
			t.Errorf("package %s in %s has %d package doc comments (%v), want 1", name, dir, len(docs), docs)
		}
	}
}
