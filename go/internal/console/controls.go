package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// maxControlBytes bounds a control request's body.
const maxControlBytes = 16 << 10

// maxPurgeIDs is the most ids one purge takes.
const maxPurgeIDs = 100

// maxID is the largest product id (18 digits, as in /item/<id>.html).
const maxID = 999_999_999_999_999_999

// Result is one target's answer to a control.
type Result struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// fanOut POSTs body to path on every target at once, with the bearer
// token, and returns each answer in target order.
func (c *collector) fanOut(ctx context.Context, targets []Target, path string, body any) []Result {
	payload, _ := json.Marshal(body) // plain structs: cannot fail
	out := make([]Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { out[i] = c.post(ctx, t, path, payload) })
	}
	wg.Wait()
	return out
}

func (c *collector) post(ctx context.Context, t Target, path string, payload []byte) Result {
	r := Result{Target: t.Name}
	ctx, cancel := context.WithTimeout(ctx, 2*c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+path, bytes.NewReader(payload))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.cfg.AdminToken)
	resp, err := c.client.Do(req)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	r.Status = resp.StatusCode
	r.OK = resp.StatusCode >= 200 && resp.StatusCode < 300
	if !r.OK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			r.Error = e.Error
		} else {
			r.Error = resp.Status
		}
	}
	return r
}

// answer writes the results: 200 when any target succeeded, else 502.
func answer(c *gin.Context, results []Result) {
	status := http.StatusBadGateway
	for _, r := range results {
		if r.OK {
			status = http.StatusOK
			break
		}
	}
	c.JSON(status, gin.H{"results": results})
}

var errBadInput = errors.New("bad input")

// decode reads a strict JSON body (unknown fields refused) into v.
func decode(c *gin.Context, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, maxControlBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", errBadInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: one JSON object expected", errBadInput)
	}
	return nil
}

type degradeRequest struct {
	Link string `json:"link"`
	Mode string `json:"mode"`
}

func (r degradeRequest) validate() error {
	if r.Link != "replica" && r.Link != "direct" {
		return fmt.Errorf(`%w: link: want "replica" or "direct"`, errBadInput)
	}
	switch r.Mode {
	case "force-degraded", "force-normal", "auto":
		return nil
	}
	return fmt.Errorf(`%w: mode: want "force-degraded", "force-normal" or "auto"`, errBadInput)
}

type hotRequest struct {
	ID     int64  `json:"id"`
	Action string `json:"action"`
}

func (r hotRequest) validate() error {
	if r.ID < 1 || r.ID > maxID {
		return fmt.Errorf("%w: id: want a product id (1 to 18 digits)", errBadInput)
	}
	if r.Action != "pin" && r.Action != "unpin" {
		return fmt.Errorf(`%w: action: want "pin" or "unpin"`, errBadInput)
	}
	return nil
}

type purgeRequest struct {
	IDs []int64 `json:"ids"`
}

func (r purgeRequest) validate() error {
	if len(r.IDs) < 1 || len(r.IDs) > maxPurgeIDs {
		return fmt.Errorf("%w: ids: want 1 to %d product ids", errBadInput, maxPurgeIDs)
	}
	for i, id := range r.IDs {
		if id < 1 || id > maxID {
			return fmt.Errorf("%w: ids[%d]: want a product id (1 to 18 digits)", errBadInput, i)
		}
	}
	return nil
}

// control is the handler of one control: decode and validate the body
// (400 with the reason, logged), fan it out, log what was done.
func control[T interface{ validate() error }](s *Service, targets func() []Target, path string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var in T
		err := decode(c, &in)
		if err == nil {
			err = in.validate()
		}
		if err != nil {
			s.log.Warn("console: control refused", "path", c.Request.URL.Path, "remote", c.ClientIP(), "error", err)
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		results := s.col.fanOut(c.Request.Context(), targets(), path, in)
		failed := 0
		for _, r := range results {
			if !r.OK {
				failed++
			}
		}
		s.log.Info("console: control", "path", c.Request.URL.Path, "request", in, "targets", len(results), "failed", failed)
		answer(c, results)
	}
}
