package tls

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func jsonResponse(body string) *http.Response {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

func TestOnlyHTTP01(t *testing.T) {
	authz := `{"status":"pending","identifier":{"type":"dns","value":"a.test"},"challenges":[
		{"type":"tls-alpn-01","url":"u1","token":"t1"},
		{"type":"http-01","url":"u2","token":"t2","error":{"type":"urn:ietf:params:acme:error:connection","detail":"connection refused"}},
		{"type":"dns-01","url":"u3","token":"t3"}]}`
	reasons := &failureReasons{}
	resp, err := onlyHTTP01(jsonResponse(authz), reasons)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	var got struct {
		Status     string
		Challenges []struct{ Type string }
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("filtered authorization is not JSON: %v\n%s", err, body)
	}
	if got.Status != "pending" || len(got.Challenges) != 1 || got.Challenges[0].Type != "http-01" {
		t.Fatalf("filtered authorization: %s", body)
	}
	if resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %d / %q, body %d bytes", resp.ContentLength, resp.Header.Get("Content-Length"), len(body))
	}
	if r := reasons.take("a.test"); r != "connection refused" {
		t.Errorf("reason = %q, want the CA's detail", r)
	}
	if r := reasons.take("a.test"); r != "" {
		t.Errorf("reason taken twice: %q", r)
	}

	// Anything that is not an authorization passes unchanged.
	large := `{"identifier":{"value":"a.test"},"challenges":[{"type":"tls-alpn-01"}],"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	for _, body := range []string{`{"status":"valid","certificate":"c"}`, `not json`, `{"challenges":[{"type":"tls-alpn-01"}]}`, large} {
		resp, err := onlyHTTP01(jsonResponse(body), reasons)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, []byte(body)) {
			t.Errorf("%.80q changed to %.80q", body, b)
		}
	}
}
