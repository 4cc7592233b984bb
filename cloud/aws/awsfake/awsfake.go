// Package awsfake stands in for the AWS services weir calls, on httptest servers
// speaking their wire formats: IMDSv2 (a PUT for a session token, then GETs that
// must carry it), the EC2 and Auto Scaling Query APIs (form POSTs, XML answers) and
// SSM's JSON 1.1 API. Tests drive the real SDK clients against them.
package awsfake

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// IMDS is a fake instance metadata service that only speaks IMDSv2.
type IMDS struct {
	*httptest.Server
	Region     string
	InstanceID string
	PrivateIP  string

	mu             sync.Mutex
	down           bool   // every request fails with 500
	lifecycleState string // "" = 404, as outside an Auto Scaling group
	tokens         int    // tokens handed out
	reads          map[string]int
}

const imdsToken = "fake-imds-token"

// NewIMDS starts a fake IMDS, closed when the test ends.
func NewIMDS(t testing.TB, region, instanceID, privateIP string) *IMDS {
	m := &IMDS{Region: region, InstanceID: instanceID, PrivateIP: privateIP, reads: map[string]int{}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	return m
}

// SetDown makes every request fail (true) or be served again (false).
func (m *IMDS) SetDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

// SetLifecycleState sets what autoscaling/target-lifecycle-state reads ("" = 404).
func (m *IMDS) SetLifecycleState(s string) {
	m.mu.Lock()
	m.lifecycleState = s
	m.mu.Unlock()
}

// Reads is how many times path (like "meta-data/instance-id") was read with a
// valid token.
func (m *IMDS) Reads(path string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads[path]
}

func (m *IMDS) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		m.tokens++
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		io.WriteString(w, imdsToken)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
		http.Error(w, "", http.StatusUnauthorized) // IMDSv1 is off, as weir's launch template requires
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/latest/")
	m.reads[path]++
	switch path {
	case "dynamic/instance-identity/document":
		json.NewEncoder(w).Encode(map[string]any{
			"region": m.Region, "instanceId": m.InstanceID, "privateIp": m.PrivateIP,
			"availabilityZone": m.Region + "a", "accountId": "123456789012", "instanceType": "c6in.large",
		})
	case "meta-data/instance-id":
		io.WriteString(w, m.InstanceID)
	case "meta-data/local-ipv4":
		io.WriteString(w, m.PrivateIP)
	case "meta-data/placement/region":
		io.WriteString(w, m.Region)
	case "meta-data/autoscaling/target-lifecycle-state":
		if m.lifecycleState == "" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, m.lifecycleState)
	default:
		http.NotFound(w, r)
	}
}

// Instance is an EC2 instance the fake lists.
type Instance struct {
	ID        string
	PrivateIP string
	State     string // running, pending, stopped, ...
	Tags      map[string]string
}

// LifecycleAction is a CompleteLifecycleAction call the fake received.
type LifecycleAction struct {
	Group, Hook, InstanceID, Result string
}

// API is a fake of the EC2, Auto Scaling and SSM APIs on one endpoint (the SDK's
// BaseEndpoint), told apart as AWS does: by the Query API's Action and Version, or
// SSM's X-Amz-Target header.
type API struct {
	*httptest.Server
	// PageSize is how many reservations (one instance each) a DescribeInstances
	// page holds; 0 = all.
	PageSize int

	mu         sync.Mutex
	region     string // requests signed for another region fail with AuthFailure
	instances  []Instance
	params     map[string]string
	throttle   int // the next this many EC2 calls fail with RequestLimitExceeded
	calls      map[string]int
	actions    []LifecycleAction
	onComplete func(LifecycleAction)
}

// NewAPI starts a fake API for region, closed when the test ends.
func NewAPI(t testing.TB, region string) *API {
	a := &API{region: region, params: map[string]string{}, calls: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

// SetRegion changes the region requests must be signed for.
func (a *API) SetRegion(region string) {
	a.mu.Lock()
	a.region = region
	a.mu.Unlock()
}

// SetInstances replaces the instances DescribeInstances lists.
func (a *API) SetInstances(in ...Instance) {
	a.mu.Lock()
	a.instances = append([]Instance(nil), in...)
	a.mu.Unlock()
}

// SetParameter stores an SSM parameter.
func (a *API) SetParameter(name, value string) {
	a.mu.Lock()
	a.params[name] = value
	a.mu.Unlock()
}

// Throttle makes the next n EC2 calls fail as AWS throttles: HTTP 503 with
// RequestLimitExceeded.
func (a *API) Throttle(n int) {
	a.mu.Lock()
	a.throttle = n
	a.mu.Unlock()
}

// Calls is how many requests of action (DescribeInstances, GetParameter, ...)
// arrived, throttled or not.
func (a *API) Calls(action string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[action]
}

// Actions lists the CompleteLifecycleAction calls received.
func (a *API) Actions() []LifecycleAction {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]LifecycleAction(nil), a.actions...)
}

// OnComplete calls f (outside the fake's lock) for each CompleteLifecycleAction.
func (a *API) OnComplete(f func(LifecycleAction)) {
	a.mu.Lock()
	a.onComplete = f
	a.mu.Unlock()
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.Method != http.MethodPost {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	// SigV4: the SDK signed it, with the fake's credentials, for the fake's region.
	auth := r.Header.Get("Authorization")
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		a.serveSSM(w, target, body, auth)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	action := form.Get("Action")
	a.mu.Lock()
	a.calls[action]++
	a.mu.Unlock()
	switch form.Get("Version") {
	case "2016-11-15":
		if !a.signed(auth, "ec2") {
			ec2Error(w, http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials")
			return
		}
		a.serveEC2(w, action, form)
	case "2011-01-01":
		if !a.signed(auth, "autoscaling") {
			queryError(w, http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to a valid region")
			return
		}
		a.serveAutoScaling(w, action, form)
	default:
		http.Error(w, "unknown API version", http.StatusBadRequest)
	}
}

// signed reports whether a SigV4 Authorization header is scoped to the fake's
// region and service.
func (a *API) signed(auth, service string) bool {
	a.mu.Lock()
	region := a.region
	a.mu.Unlock()
	return strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=") &&
		strings.Contains(auth, "/"+region+"/"+service+"/aws4_request")
}

func (a *API) serveEC2(w http.ResponseWriter, action string, form url.Values) {
	a.mu.Lock()
	throttled := a.throttle > 0
	if throttled {
		a.throttle--
	}
	a.mu.Unlock()
	if throttled {
		ec2Error(w, http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
		return
	}
	if action != "DescribeInstances" {
		ec2Error(w, http.StatusBadRequest, "InvalidAction", "The action "+action+" is not valid for this web service.")
		return
	}
	filters := map[string][]string{}
	for i := 1; form.Has(fmt.Sprintf("Filter.%d.Name", i)); i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		for j := 1; form.Has(fmt.Sprintf("Filter.%d.Value.%d", i, j)); j++ {
			filters[name] = append(filters[name], form.Get(fmt.Sprintf("Filter.%d.Value.%d", i, j)))
		}
	}
	var ids []string
	for i := 1; form.Has(fmt.Sprintf("InstanceId.%d", i)); i++ {
		ids = append(ids, form.Get(fmt.Sprintf("InstanceId.%d", i)))
	}
	a.mu.Lock()
	var match []Instance
	for _, in := range a.instances {
		if (len(ids) == 0 || contains(ids, in.ID)) && matches(in, filters) {
			match = append(match, in)
		}
	}
	pageSize := a.PageSize
	a.mu.Unlock()
	start, _ := strconv.Atoi(form.Get("NextToken"))
	if start > len(match) {
		start = len(match)
	}
	end := len(match)
	if pageSize > 0 && start+pageSize < end {
		end = start + pageSize
	}
	type tag struct {
		Key   string `xml:"key"`
		Value string `xml:"value"`
	}
	type instance struct {
		ID        string `xml:"instanceId"`
		PrivateIP string `xml:"privateIpAddress,omitempty"`
		State     string `xml:"instanceState>name"`
		Tags      []tag  `xml:"tagSet>item"`
	}
	type reservation struct {
		ID        string     `xml:"reservationId"`
		Instances []instance `xml:"instancesSet>item"`
	}
	resp := struct {
		XMLName      xml.Name      `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeInstancesResponse"`
		RequestID    string        `xml:"requestId"`
		Reservations []reservation `xml:"reservationSet>item"`
		NextToken    string        `xml:"nextToken,omitempty"`
	}{RequestID: "fake-request"}
	for i, in := range match[start:end] {
		inst := instance{ID: in.ID, PrivateIP: in.PrivateIP, State: in.State}
		keys := make([]string, 0, len(in.Tags))
		for k := range in.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			inst.Tags = append(inst.Tags, tag{k, in.Tags[k]})
		}
		resp.Reservations = append(resp.Reservations, reservation{ID: fmt.Sprintf("r-%d", start+i), Instances: []instance{inst}})
	}
	if end < len(match) {
		resp.NextToken = strconv.Itoa(end)
	}
	writeXML(w, resp)
}

func matches(in Instance, filters map[string][]string) bool {
	for name, values := range filters {
		var have string
		switch {
		case name == "instance-state-name":
			have = in.State
		case strings.HasPrefix(name, "tag:"):
			v, ok := in.Tags[strings.TrimPrefix(name, "tag:")]
			if !ok {
				return false
			}
			have = v
		default:
			return false // a filter the fake does not know matches nothing: the test sees it
		}
		if !contains(values, have) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *API) serveAutoScaling(w http.ResponseWriter, action string, form url.Values) {
	switch action {
	case "CompleteLifecycleAction":
		act := LifecycleAction{Group: form.Get("AutoScalingGroupName"), Hook: form.Get("LifecycleHookName"),
			InstanceID: form.Get("InstanceId"), Result: form.Get("LifecycleActionResult")}
		a.mu.Lock()
		a.actions = append(a.actions, act)
		f := a.onComplete
		a.mu.Unlock()
		if f != nil {
			f(act)
		}
		writeXML(w, struct {
			XMLName   xml.Name `xml:"http://autoscaling.amazonaws.com/doc/2011-01-01/ CompleteLifecycleActionResponse"`
			Result    struct{} `xml:"CompleteLifecycleActionResult"`
			RequestID string   `xml:"ResponseMetadata>RequestId"`
		}{RequestID: "fake-request"})
	default:
		queryError(w, http.StatusBadRequest, "InvalidAction", "unknown action "+action)
	}
}

func (a *API) serveSSM(w http.ResponseWriter, target string, body []byte, auth string) {
	action := strings.TrimPrefix(target, "AmazonSSM.")
	a.mu.Lock()
	a.calls[action]++
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if !a.signed(auth, "ssm") {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`)
		return
	}
	if action != "GetParameter" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"UnknownOperationException"}`)
		return
	}
	var req struct {
		Name           string
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"SerializationException"}`)
		return
	}
	a.mu.Lock()
	value, ok := a.params[req.Name]
	region := a.region
	a.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "ParameterNotFound", "message": "parameter " + req.Name + " not found"})
		return
	}
	if !req.WithDecryption {
		value = "AQICAHh-encrypted" // a SecureString read without decryption is ciphertext
	}
	json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": req.Name, "Type": "SecureString", "Value": value, "Version": 1,
		"ARN": "arn:aws:ssm:" + region + ":123456789012:parameter" + req.Name, "DataType": "text",
	}})
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(v)
}

// ec2Error writes the EC2 API's error document.
func ec2Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake-request</RequestID></Response>`, code, msg)
}

// queryError writes the Query APIs' (Auto Scaling's) error document.
func queryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake-request</RequestId></ErrorResponse>`, code, msg)
}
