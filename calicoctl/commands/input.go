package commands

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	v3 "github.com/tabbynet/tabby/api/v3"
)

// document is one resource read from a file, and where it came from, so that
// every message can point at it.
type document struct {
	Source string // the file's path, or "stdin"
	Index  int    // 1-based position of the YAML/JSON document in Source
	Res    v3.Resource
}

// where names the document: `pools.yaml: document 2`.
func (d document) where() string { return fmt.Sprintf("%s: document %d", d.Source, d.Index) }

// String names the document and the resource: `pools.yaml: document 2: IPPool "p2"`.
func (d document) String() string { return d.where() + ": " + v3.Describe(d.Res) }

// fileFlags are the input flags shared by the commands that read files.
type fileFlags struct {
	filename  string
	recursive bool
	skipEmpty bool
}

func (f *fileFlags) register(cmd *cobra.Command, verb string) {
	cmd.Flags().StringVarP(&f.filename, "filename", "f", "", "Filename to use to "+verb+" the resource. If set to \"-\" loads from stdin. If filename is a directory, every .yaml, .yml and .json file in it is used, in name order.")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "Process the directory given with -f recursively.")
	cmd.Flags().BoolVar(&f.skipEmpty, "skip-empty", false, "Do not error if a file or directory given with -f contains no resources.")
}

// loadDocuments reads every resource named by -f: a file, "-" for stdin, or
// a directory (its .yaml/.yml/.json files in name order, descending into
// subdirectories with --recursive). Every file is decoded before anything is
// returned, and all decode errors are reported together, each naming its
// file and document.
func (c *CLI) loadDocuments(cmd *cobra.Command, f fileFlags) ([]document, error) {
	if f.filename == "-" {
		data, err := io.ReadAll(c.stdin(cmd))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		docs, err := decodeSource("stdin", data)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 && !f.skipEmpty {
			return nil, errors.New("no resources specified in stdin")
		}
		return docs, nil
	}

	info, err := os.Stat(f.filename)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.filename, err)
	}
	files := []string{f.filename}
	if info.IsDir() {
		if files, err = resourceFiles(f.filename, f.recursive); err != nil {
			return nil, err
		}
	}
	var docs []document
	var errs []error
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", path, err))
			continue
		}
		fileDocs, err := decodeSource(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(fileDocs) == 0 && !f.skipEmpty {
			errs = append(errs, fmt.Errorf("no resources specified in file %s", path))
		}
		docs = append(docs, fileDocs...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(docs) == 0 && info.IsDir() && !f.skipEmpty {
		return nil, fmt.Errorf("no resources specified in directory %s", f.filename)
	}
	return docs, nil
}

// decodeSource decodes one file's worth of documents.
func decodeSource(source string, data []byte) ([]document, error) {
	decoded, err := v3.DecodeAll(data)
	if err != nil {
		var de *v3.DecodeError
		if errors.As(err, &de) {
			return nil, fmt.Errorf("%s: document %d: %w", source, de.Index+1, de.Err)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	docs := make([]document, len(decoded))
	for i, d := range decoded {
		docs[i] = document{Source: source, Index: d.Index + 1, Res: d.Resource}
	}
	return docs, nil
}

// resourceFiles lists the .yaml, .yml and .json files of dir in name order.
func resourceFiles(dir string, recursive bool) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	// WalkDir visits entries in lexical order, so files come out sorted
	// within each directory.
	return files, nil
}
