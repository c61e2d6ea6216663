package main

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// scan lists the tree under root for two-way sync, which compares it
// with what it synced last: one record per file, directory or symlink,
// .git and other file types left out. A record is three NUL-terminated
// fields: "TYPE MODE SIZE MTIME" (TYPE f, d or l; MODE octal permission
// bits; MTIME in Unix seconds), the slash path relative to root, and a
// symlink's target ("" otherwise).
func scan(root string, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // vanished meanwhile, or unreadable: not ours to sync
		}
		if p == root {
			return nil
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var typ byte
		switch t := d.Type(); {
		case t.IsRegular():
			typ = 'f'
		case t.IsDir():
			typ = 'd'
		case t&fs.ModeSymlink != 0:
			typ = 'l'
		default:
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		link := ""
		if typ == 'l' {
			link, _ = os.Readlink(p)
		}
		size := fi.Size()
		if typ != 'f' {
			size = 0
		}
		bw.WriteByte(typ)
		bw.WriteString(strconv.FormatUint(uint64(fi.Mode().Perm()), 8))
		fmt.Fprintf(bw, " %d %d\x00%s\x00%s\x00", size, fi.ModTime().Unix(), filepath.ToSlash(rel), link)
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}
