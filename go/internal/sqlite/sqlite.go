// Package sqlite is the source of truth of the catalog: products, shops and
// their dimensions in SQLite (modernc.org/sqlite, no cgo), with a
// transactional outbox so that no edit is lost on its way to Kafka.
//
// Every record is stored as its JSON document next to its id and version,
// one table per catalog.Kind (Kind.Table).
// Versions come from one catalog-wide sequence, bumped in the same
// transaction as the edit and its outbox row.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open catalog database.
type DB struct {
	rw  *sql.DB // one connection: SQLite has one writer, so we queue here, not in busy loops
	ro  *sql.DB
	Now func() time.Time
}

// Open opens (creating if needed) the database at path and applies the
// embedded migrations in order.
func Open(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", "busy_timeout(10000)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	rw, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rw.SetMaxOpenConns(1)
	db := &DB{rw: rw, Now: time.Now}
	if err := db.migrate(ctx); err != nil {
		rw.Close()
		return nil, err
	}
	ro, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	if err != nil {
		rw.Close()
		return nil, fmt.Errorf("sqlite: open %s read-only: %w", path, err)
	}
	ro.SetMaxOpenConns(8)
	db.ro = ro
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	return errors.Join(db.ro.Close(), db.rw.Close())
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.rw.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		var n int
		if err := db.rw.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
		err = db.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES (?)`, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migrate %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.rw.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Get returns the JSON document of one record, or catalog.ErrNotFound.
func (db *DB) Get(ctx context.Context, kind *catalog.Kind, id int64) (json.RawMessage, error) {
	var doc string
	err := db.ro.QueryRowContext(ctx, `SELECT doc FROM `+kind.Table+` WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, catalog.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %d: %w", kind, id, err)
	}
	return json.RawMessage(doc), nil
}

// GetMany returns the documents of the ids that exist, keyed by id.
func (db *DB) GetMany(ctx context.Context, kind *catalog.Kind, ids []int64) (map[int64]json.RawMessage, error) {
	out := make(map[int64]json.RawMessage, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, "?"
	}
	rows, err := db.ro.QueryContext(ctx, `SELECT id, doc FROM `+kind.Table+` WHERE id IN (`+strings.Join(marks, ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get %s batch: %w", kind, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var doc string
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, fmt.Errorf("sqlite: get %s batch: %w", kind, err)
		}
		out[id] = json.RawMessage(doc)
	}
	return out, rows.Err()
}

// ProductVersions returns, for each of ids that is a product, the version
// of each of its dimensions in catalog.ProductDimensions order (0 where the
// product has none of that dimension): one query over the version columns,
// no document read. Ids that are not products are absent.
func (db *DB) ProductVersions(ctx context.Context, ids []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i], marks[i] = id, "?"
	}
	rows, err := db.ro.QueryContext(ctx, productVersionsQuery+`(`+strings.Join(marks, ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: product versions: %w", err)
	}
	defer rows.Close()
	n := len(catalog.ProductKinds)
	for rows.Next() {
		var id int64
		vs := make([]int64, n)
		dest := make([]any, 0, n+1)
		dest = append(dest, &id)
		for i := range vs {
			dest = append(dest, &vs[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("sqlite: product versions: %w", err)
		}
		out[id] = vs
	}
	return out, rows.Err()
}

// productVersionsQuery selects a product's id and its dimensions' versions
// (catalog.ProductKinds order, the base first); the id list follows.
var productVersionsQuery = func() string {
	sel, from := `SELECT p.id`, ` FROM `+catalog.KindProduct.Table+` p`
	for i, k := range catalog.ProductKinds {
		if k == catalog.KindProduct {
			sel += `, p.version`
			continue
		}
		sel += fmt.Sprintf(`, coalesce(t%d.version, 0)`, i)
		from += fmt.Sprintf(` LEFT JOIN %s t%d ON t%d.id = p.id`, k.Table, i, i)
	}
	return sel + from + ` WHERE p.id IN `
}()

// ProductIDs returns up to limit product ids greater than after, in order.
func (db *DB) ProductIDs(ctx context.Context, after int64, limit int) ([]int64, error) {
	rows, err := db.ro.QueryContext(ctx, `SELECT id FROM `+catalog.KindProduct.Table+` WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: product ids: %w", err)
	}
	defer rows.Close()
	ids := make([]int64, 0, limit)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: product ids: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Count returns how many records of a kind exist.
func (db *DB) Count(ctx context.Context, kind *catalog.Kind) (int64, error) {
	var n int64
	err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM `+kind.Table).Scan(&n)
	return n, err
}

// Put validates and stores a full record of kind for id, assigns it the
// next catalog version and queues its change event in the outbox, all in
// one transaction. It returns the stored document. A product-scoped kind
// other than the base (catalog.KindProduct) needs the product to exist,
// and a product its shop.
func (db *DB) Put(ctx context.Context, kind *catalog.Kind, id int64, rec catalog.Record) (json.RawMessage, error) {
	var stored json.RawMessage
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		version, err := nextVersion(ctx, tx)
		if err != nil {
			return err
		}
		if rec.Kind() != kind {
			return fmt.Errorf("a %T is not a %s record", rec, kind)
		}
		rec.Stamp(id, version)
		if kind.Dim != "" && kind != catalog.KindProduct {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+catalog.KindProduct.Table+` WHERE id = ?`, id).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("product %d: %w", id, catalog.ErrNotFound)
			}
		}
		if p, ok := rec.(*catalog.Product); ok {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+catalog.KindShop.Table+` WHERE id = ?`, p.ShopID).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return &catalog.ValidationError{Reason: fmt.Sprintf("shop_id: shop %d does not exist", p.ShopID)}
			}
		}
		doc, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := upsert(ctx, tx, kind, id, version, doc); err != nil {
			return err
		}
		change := catalog.Change{Entity: kind.Entity, ID: id, Version: version, TS: db.Now().UnixMilli()}
		if kind.Dim != "" {
			change.Dims = []catalog.Dimension{kind.Dim}
		}
		if err := enqueue(ctx, tx, catalog.TopicHigh, change); err != nil {
			return err
		}
		stored = doc
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: put %s %d: %w", kind, id, err)
	}
	return stored, nil
}

func nextVersion(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `UPDATE version_seq SET v = v + 1 WHERE id = 1 RETURNING v`).Scan(&v)
	return v, err
}

func upsert(ctx context.Context, tx *sql.Tx, kind *catalog.Kind, id, version int64, doc []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+kind.Table+` (id, version, doc) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET version = excluded.version, doc = excluded.doc`, id, version, string(doc))
	return err
}

func enqueue(ctx context.Context, tx *sql.Tx, topic string, c catalog.Change) error {
	payload, err := json.Marshal(c)
	if err != nil {
		return err
	}
	key := string(c.Entity) + ":" + strconv.FormatInt(c.ID, 10)
	_, err = tx.ExecContext(ctx, `INSERT INTO outbox (topic, key, payload, created_at) VALUES (?, ?, ?, ?)`,
		topic, key, string(payload), c.TS)
	return err
}

// OutboxRow is one change waiting to be published.
type OutboxRow struct {
	Seq     int64
	Topic   string
	Key     string
	Payload []byte
}

// Unsent returns up to limit outbox rows not yet acknowledged by the broker,
// oldest first.
func (db *DB) Unsent(ctx context.Context, limit int) ([]OutboxRow, error) {
	rows, err := db.ro.QueryContext(ctx, `SELECT seq, topic, key, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		var payload string
		if err := rows.Scan(&r.Seq, &r.Topic, &r.Key, &payload); err != nil {
			return nil, fmt.Errorf("sqlite: outbox: %w", err)
		}
		r.Payload = []byte(payload)
		out = append(out, r)
	}
	return out, rows.Err()
}

// MarkSent records that the broker acknowledged the rows seqs, and forgets
// rows acknowledged more than an hour ago.
func (db *DB) MarkSent(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	now := db.Now().UnixMilli()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		// One statement per chunk, not one per row: this was a sixth of the
		// source's CPU during a bulk refresh.
		for start := 0; start < len(seqs); start += 500 {
			chunk := seqs[start:min(start+500, len(seqs))]
			args := make([]any, 0, len(chunk)+1)
			args = append(args, now)
			marks := make([]string, len(chunk))
			for i, s := range chunk {
				args, marks[i] = append(args, s), "?"
			}
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ? WHERE seq IN (`+strings.Join(marks, ",")+`)`, args...); err != nil {
				return fmt.Errorf("sqlite: outbox mark sent: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?`, now-time.Hour.Milliseconds())
		return err
	})
}

// OutboxPending returns how many outbox rows wait for the broker.
func (db *DB) OutboxPending(ctx context.Context) (int64, error) {
	var n int64
	err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n)
	return n, err
}

// EnqueueRefresh queues a low-priority refresh event for every product and
// shop (cache fill and preheat). It returns how many events were queued.
func (db *DB) EnqueueRefresh(ctx context.Context) (int, error) {
	return db.EnqueueRefreshExcept(ctx, nil)
}

// EnqueueRefreshExcept is EnqueueRefresh for every shop and every product
// but those in skip (a cold Redis main's recovery preheats the hottest
// products itself and refreshes the rest).
func (db *DB) EnqueueRefreshExcept(ctx context.Context, skip map[int64]bool) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) (err error) {
		n, err = db.enqueueRefresh(ctx, tx, skip)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: enqueue refresh: %w", err)
	}
	return n, nil
}

func (db *DB) enqueueRefresh(ctx context.Context, tx *sql.Tx, skip map[int64]bool) (int, error) {
	n := 0
	now := db.Now().UnixMilli()
	for _, k := range []*catalog.Kind{catalog.KindShop, catalog.KindProduct} {
		rows, err := tx.QueryContext(ctx, `SELECT id, version FROM `+k.Table+` ORDER BY id`)
		if err != nil {
			return 0, err
		}
		var changes []catalog.Change
		for rows.Next() {
			c := catalog.Change{Entity: k.Entity, Refresh: true, TS: now}
			if err := rows.Scan(&c.ID, &c.Version); err != nil {
				rows.Close()
				return 0, err
			}
			if k == catalog.KindProduct && skip[c.ID] {
				continue
			}
			changes = append(changes, c)
		}
		rows.Close()
		for _, c := range changes {
			if err := enqueue(ctx, tx, catalog.TopicLow, c); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}

// ProductRecords are the records of one product, for bulk loading: its
// *catalog.Product first, then any of its other dimensions.
type ProductRecords []catalog.Record

// Seeded reports whether the catalog was loaded already.
func (db *DB) Seeded(ctx context.Context) (bool, error) {
	var n int
	err := db.ro.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE k = 'seeded_at'`).Scan(&n)
	return n > 0, err
}

// BulkLoad stores shops and products in one transaction, assigning versions
// in order, marks the catalog seeded and queues a low-priority refresh of
// everything so the sync service fills Redis. progress, if not nil, is
// called every 1,000 products.
func (db *DB) BulkLoad(ctx context.Context, shops []catalog.Shop, products func(yield func(ProductRecords) bool), progress func(n int)) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		put := func(id int64, rec catalog.Record) error {
			version, err := nextVersion(ctx, tx)
			if err != nil {
				return err
			}
			rec.Stamp(id, version)
			doc, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			return upsert(ctx, tx, rec.Kind(), id, version, doc)
		}
		for i := range shops {
			if err := put(shops[i].ID, &shops[i]); err != nil {
				return fmt.Errorf("shop %d: %w", shops[i].ID, err)
			}
		}
		var loadErr error
		n := 0
		products(func(recs ProductRecords) bool {
			p, ok := recs[0].(*catalog.Product)
			if !ok {
				loadErr = fmt.Errorf("product records start with a %T, want the product", recs[0])
				return false
			}
			id := p.ID
			for _, rec := range recs {
				if loadErr = put(id, rec); loadErr != nil {
					loadErr = fmt.Errorf("product %d %s: %w", id, rec.Kind(), loadErr)
					return false
				}
			}
			n++
			if progress != nil && n%1000 == 0 {
				progress(n)
			}
			return ctx.Err() == nil
		})
		if loadErr != nil {
			return loadErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := db.enqueueRefresh(ctx, tx, nil); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('seeded_at', ?)`, db.Now().UTC().Format(time.RFC3339))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: bulk load: %w", err)
	}
	return nil
}
