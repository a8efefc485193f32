package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	_ "github.com/mattn/go-sqlite3"
)

// FreeCredits is what a new key starts with, unless -credits says otherwise.
const FreeCredits = 200

var (
	errBadKey    = errors.New("invalid API key")
	errNoCredits = errors.New("no credits left")
)

// keys keeps API keys hashed in their own SQLite table: a key is shown
// once, at creation, and never stored or logged in clear.
type keys struct {
	db      *sql.DB
	credits int
}

func openKeys(path string) (*keys, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS api_keys (
		id      TEXT PRIMARY KEY,
		hash    BLOB NOT NULL,
		credits INTEGER NOT NULL,
		created INTEGER NOT NULL DEFAULT (unixepoch())
	)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("keys %s: %w", path, err)
	}
	return &keys{db: db, credits: FreeCredits}, nil
}

// create makes a key "fk_<id>_<secret>" with k.credits credits.
func (k *keys) create(ctx context.Context) (string, error) {
	var idb [6]byte
	var secret [24]byte
	rand.Read(idb[:])
	rand.Read(secret[:])
	id, sec := hex.EncodeToString(idb[:]), hex.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	if _, err := k.db.ExecContext(ctx, `INSERT INTO api_keys (id, hash, credits) VALUES (?, ?, ?)`, id, sum[:], k.credits); err != nil {
		return "", err
	}
	return "fk_" + id + "_" + sec, nil
}

// check verifies a key in constant time and returns its id (safe to log).
func (k *keys) check(ctx context.Context, key string) (string, error) {
	id, sec, ok := strings.Cut(strings.TrimPrefix(key, "fk_"), "_")
	if !ok || !strings.HasPrefix(key, "fk_") {
		return "", errBadKey
	}
	sum := sha256.Sum256([]byte(sec))
	var stored []byte
	err := k.db.QueryRowContext(ctx, `SELECT hash FROM api_keys WHERE id = ?`, id).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		stored = make([]byte, sha256.Size) // compare anyway: same time as a known id
	} else if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 {
		return "", errBadKey
	}
	return id, nil
}

// spend takes one credit from the key id and returns the credits left.
func (k *keys) spend(ctx context.Context, id string) (int, error) {
	var left int
	err := k.db.QueryRowContext(ctx, `UPDATE api_keys SET credits = credits - 1 WHERE id = ? AND credits > 0 RETURNING credits`, id).Scan(&left)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errNoCredits
	}
	return left, err
}
