package redisstore

// PerKeyCalls returns a view of s whose Put sends one script call per
// entry, as before calls were grouped by hash tag: BenchmarkPut measures
// the two side by side.
func PerKeyCalls(s *Store) *Store {
	return &Store{rdb: s.rdb, followsFailover: s.followsFailover, fenceKey: s.fenceKey, fenceToken: s.fenceToken, perKey: true}
}

// MaxCallKeys is how many entries one grouped script call holds at most.
const MaxCallKeys = maxCallKeys
