package weir_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Terraform and Packer cannot run here (no Terraform, no AWS), so these tests
// read the HCL the way both tools do (hashicorp/hcl/v2, native syntax) and check
// what AWS and weir require of it.

// deployFiles lists the files under deploy/ whose names end in one of suffixes.
func deployFiles(t *testing.T, suffixes ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("deploy", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, s := range suffixes {
			if !d.IsDir() && strings.HasSuffix(path, s) {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDeployHCLParsesAndIsFormatted: every .tf and .hcl file parses without a
// diagnostic and is as `terraform fmt` / `packer fmt` would write it.
func TestDeployHCLParsesAndIsFormatted(t *testing.T) {
	files := deployFiles(t, ".tf", ".hcl")
	for _, want := range []string{
		"deploy/packer/weir.pkr.hcl",
		"deploy/terraform/modules/gwlb-appliance/main.tf",
		"deploy/terraform/modules/mirror-target/main.tf",
		"deploy/terraform/examples/inspection-vpc/main.tf",
	} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing (found %v)", want, files)
		}
	}
	parser := hclparse.NewParser()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, diags := parser.ParseHCL(src, f); len(diags) > 0 {
			t.Errorf("%s: %s", f, diags.Error())
			continue
		}
		if formatted := hclwrite.Format(src); !bytes.Equal(formatted, src) {
			t.Errorf("%s is not formatted; first difference at line %d", f, firstDiffLine(src, formatted))
		}
	}
}

func firstDiffLine(a, b []byte) int {
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestDeployHCLTemplates: Terraform templates (.tftpl) parse as HCL templates.
func TestDeployHCLTemplates(t *testing.T) {
	files := deployFiles(t, ".tftpl")
	if len(files) == 0 {
		t.Fatal("no .tftpl files under deploy/")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, diags := hclsyntax.ParseTemplate(src, f, hcl.InitialPos); len(diags) > 0 {
			t.Errorf("%s: %s", f, diags.Error())
		}
	}
}

// tfModule is a Terraform module's .tf files, parsed.
type tfModule struct {
	dir    string
	bodies []*hclsyntax.Body
	src    map[string][]byte
}

func loadModule(t *testing.T, dir string) *tfModule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s (%v)", dir, err)
	}
	m := &tfModule{dir: dir, src: map[string][]byte{}}
	parser := hclparse.NewParser()
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		file, diags := parser.ParseHCL(src, f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		m.bodies = append(m.bodies, file.Body.(*hclsyntax.Body))
		m.src[f] = src
	}
	return m
}

// blocks returns the module's top-level blocks of a type.
func (m *tfModule) blocks(typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.bodies {
		for _, blk := range b.Blocks {
			if blk.Type == typ {
				out = append(out, blk)
			}
		}
	}
	return out
}

// block returns the top-level block with this type and labels.
func (m *tfModule) block(t *testing.T, typ string, labels ...string) *hclsyntax.Block {
	t.Helper()
	for _, blk := range m.blocks(typ) {
		if slices.Equal(blk.Labels, labels) {
			return blk
		}
	}
	t.Fatalf("%s: no %s %q", m.dir, typ, labels)
	return nil
}

// text is an expression's source text.
func (m *tfModule) text(expr hcl.Expression) string {
	r := expr.Range()
	return string(r.SliceBytes(m.src[r.Filename]))
}

// variableDefault is a variable's default value (a literal).
func (m *tfModule) variableDefault(t *testing.T, name string) cty.Value {
	t.Helper()
	return literal(t, attr(t, m.block(t, "variable", name).Body, "default"))
}

func attr(t *testing.T, body *hclsyntax.Body, name string) hclsyntax.Expression {
	t.Helper()
	a, ok := body.Attributes[name]
	if !ok {
		t.Fatalf("%s: no attribute %q", body.SrcRange, name)
	}
	return a.Expr
}

// literal evaluates an expression that needs no variables.
func literal(t *testing.T, expr hcl.Expression) cty.Value {
	t.Helper()
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s: not a literal: %s", expr.Range(), diags.Error())
	}
	return v
}

func literalString(t *testing.T, expr hcl.Expression) string {
	t.Helper()
	v := literal(t, expr)
	if v.Type() != cty.String {
		t.Fatalf("%s: %s, want a string", expr.Range(), v.Type().FriendlyName())
	}
	return v.AsString()
}

func literalInt(t *testing.T, expr hcl.Expression) int64 {
	t.Helper()
	v := literal(t, expr)
	if v.Type() != cty.Number {
		t.Fatalf("%s: %s, want a number", expr.Range(), v.Type().FriendlyName())
	}
	n, _ := v.AsBigFloat().Int64()
	return n
}

// nested returns a body's blocks of a type, and the content blocks of its
// dynamic blocks of that type.
func nested(body *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range body.Blocks {
		if b.Type == typ {
			out = append(out, b)
		}
		if b.Type == "dynamic" && len(b.Labels) == 1 && b.Labels[0] == typ {
			for _, c := range b.Body.Blocks {
				if c.Type == "content" {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func oneNested(t *testing.T, body *hclsyntax.Body, typ string) *hclsyntax.Block {
	t.Helper()
	bs := nested(body, typ)
	if len(bs) != 1 {
		t.Fatalf("%s: %d %q blocks, want 1", body.SrcRange, len(bs), typ)
	}
	return bs[0]
}

// stringList evaluates a literal list of strings.
func stringList(t *testing.T, expr hcl.Expression) []string {
	t.Helper()
	var out []string
	for it := literal(t, expr).ElementIterator(); it.Next(); {
		_, v := it.Element()
		out = append(out, v.AsString())
	}
	return out
}

// drainDelay is health.drain_delay of the example production config.
func drainDelay(t *testing.T) time.Duration {
	t.Helper()
	data, err := os.ReadFile("deploy/config/weir.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^  drain_delay: (\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("deploy/config/weir.yaml sets no health.drain_delay")
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHCLGWLBApplianceModule: the module builds what a GWLB appliance needs.
func TestHCLGWLBApplianceModule(t *testing.T) {
	m := loadModule(t, "deploy/terraform/modules/gwlb-appliance")
	drain := drainDelay(t)

	lb := m.block(t, "resource", "aws_lb", "gwlb").Body
	if got := literalString(t, attr(t, lb, "load_balancer_type")); got != "gateway" {
		t.Errorf("aws_lb load_balancer_type %q, want gateway", got)
	}
	if got := m.text(attr(t, lb, "subnets")); got != "var.subnet_ids" {
		t.Errorf("aws_lb subnets = %s, want var.subnet_ids", got)
	}

	tg := m.block(t, "resource", "aws_lb_target_group", "weir").Body
	if got := literalString(t, attr(t, tg, "protocol")); got != "GENEVE" {
		t.Errorf("target group protocol %q, want GENEVE", got)
	}
	if got := literalInt(t, attr(t, tg, "port")); got != 6081 {
		t.Errorf("target group port %d, want 6081", got)
	}
	if got := m.text(attr(t, tg, "deregistration_delay")); got != "var.deregistration_delay" {
		t.Errorf("deregistration_delay = %s, want var.deregistration_delay", got)
	}
	if dd := m.variableDefault(t, "deregistration_delay"); literalIntValue(dd) < int64(drain/time.Second) {
		t.Errorf("deregistration_delay default %s s is shorter than health.drain_delay %v in deploy/config/weir.yaml", dd.AsBigFloat(), drain)
	}
	hc := oneNested(t, tg, "health_check").Body
	for name, want := range map[string]string{"protocol": "HTTP", "path": "/healthz", "matcher": "200-399"} {
		if got := literalString(t, attr(t, hc, name)); got != want {
			t.Errorf("health_check %s %q, want %q", name, got, want)
		}
	}
	if got := m.text(attr(t, hc, "port")); !strings.Contains(got, "var.health_port") {
		t.Errorf("health_check port = %s, want var.health_port", got)
	}
	if got := literalIntValue(m.variableDefault(t, "health_port")); got != 8080 {
		t.Errorf("health_port default %d, want 8080 (weir's health.listen)", got)
	}
	tf := oneNested(t, tg, "target_failover").Body
	onDereg, onUnhealthy := literalString(t, attr(t, tf, "on_deregistration")), literalString(t, attr(t, tf, "on_unhealthy"))
	if onDereg != "rebalance" || onUnhealthy != onDereg {
		t.Errorf("target_failover on_deregistration %q on_unhealthy %q, want both rebalance (AWS requires them equal)", onDereg, onUnhealthy)
	}
	if got := m.variableDefault(t, "stickiness").AsString(); got != "5-tuple" {
		t.Errorf("stickiness default %q, want 5-tuple (GWLB's default)", got)
	}
	if got := m.text(attr(t, oneNested(t, tg, "stickiness").Body, "type")); got != "stickiness.value" {
		t.Errorf("stickiness type = %s, want stickiness.value", got)
	}

	listener := m.block(t, "resource", "aws_lb_listener", "gwlb").Body
	if got := m.text(attr(t, oneNested(t, listener, "default_action").Body, "target_group_arn")); got != "aws_lb_target_group.weir.arn" {
		t.Errorf("listener forwards to %s", got)
	}
	es := m.block(t, "resource", "aws_vpc_endpoint_service", "gwlb").Body
	if got := m.text(attr(t, es, "gateway_load_balancer_arns")); got != "[aws_lb.gwlb.arn]" {
		t.Errorf("endpoint service gateway_load_balancer_arns = %s", got)
	}

	lt := m.block(t, "resource", "aws_launch_template", "weir").Body
	md := oneNested(t, lt, "metadata_options").Body
	if got := literalString(t, attr(t, md, "http_tokens")); got != "required" {
		t.Errorf("metadata_options http_tokens %q, want required (IMDSv2)", got)
	}
	if got := literalInt(t, attr(t, md, "http_put_response_hop_limit")); got != 1 {
		t.Errorf("hop limit %d, want 1", got)
	}
	if got := m.text(attr(t, lt, "user_data")); !strings.HasPrefix(got, "base64encode(templatefile(") {
		t.Errorf("user_data = %s, want base64encode(templatefile(...))", got)
	}

	asg := m.block(t, "resource", "aws_autoscaling_group", "weir").Body
	if got := literalString(t, attr(t, asg, "health_check_type")); got != "ELB" {
		t.Errorf("ASG health_check_type %q, want ELB", got)
	}
	if got := m.text(attr(t, asg, "vpc_zone_identifier")); got != "var.subnet_ids" {
		t.Errorf("ASG vpc_zone_identifier = %s", got)
	}
	if got := m.text(attr(t, m.block(t, "resource", "aws_autoscaling_attachment", "gwlb").Body, "lb_target_group_arn")); got != "aws_lb_target_group.weir.arn" {
		t.Errorf("ASG attachment lb_target_group_arn = %s", got)
	}
	var discoveryTag bool
	for _, tag := range nested(asg, "tag") {
		if m.text(attr(t, tag.Body, "key")) == "var.discovery_tag_key" && literal(t, attr(t, tag.Body, "propagate_at_launch")).True() {
			discoveryTag = true
		}
	}
	if !discoveryTag {
		t.Error("ASG has no tag var.discovery_tag_key with propagate_at_launch = true (EC2 discovery)")
	}

	hook := m.block(t, "resource", "aws_autoscaling_lifecycle_hook", "drain").Body
	if got := literalString(t, attr(t, hook, "lifecycle_transition")); got != "autoscaling:EC2_INSTANCE_TERMINATING" {
		t.Errorf("lifecycle hook transition %q", got)
	}
	if got := literalString(t, attr(t, hook, "default_result")); got != "CONTINUE" {
		t.Errorf("lifecycle hook default_result %q, want CONTINUE", got)
	}
	if got := m.text(attr(t, hook, "autoscaling_group_name")); got != "aws_autoscaling_group.weir.name" {
		t.Errorf("lifecycle hook on %s", got)
	}
	if hb := literalIntValue(m.variableDefault(t, "lifecycle_heartbeat_timeout")); hb <= int64(drain/time.Second) {
		t.Errorf("lifecycle_heartbeat_timeout default %d s does not exceed health.drain_delay %v", hb, drain)
	}
}

func literalIntValue(v cty.Value) int64 {
	n, _ := v.AsBigFloat().Int64()
	return n
}

// TestHCLGWLBApplianceSecurityGroup: ingress is exactly GENEVE and the health
// check from the GWLB subnets, gossip from the group itself, and metrics from
// the given CIDRs.
func TestHCLGWLBApplianceSecurityGroup(t *testing.T) {
	m := loadModule(t, "deploy/terraform/modules/gwlb-appliance")
	sg := m.block(t, "resource", "aws_security_group", "weir").Body
	var rules []string
	for _, in := range nested(sg, "ingress") {
		b := in.Body
		proto := literalString(t, attr(t, b, "protocol"))
		from, to := m.text(attr(t, b, "from_port")), m.text(attr(t, b, "to_port"))
		if from != to {
			t.Errorf("ingress %s %s-%s: want single ports", proto, from, to)
		}
		source := "?"
		if a, ok := b.Attributes["self"]; ok && literal(t, a.Expr).True() {
			source = "self"
			if _, also := b.Attributes["cidr_blocks"]; also {
				t.Errorf("ingress %s %s: self and cidr_blocks", proto, from)
			}
		} else if a, ok := b.Attributes["cidr_blocks"]; ok {
			source = m.text(a.Expr)
		}
		rules = append(rules, fmt.Sprintf("%s %s from %s", proto, from, source))
	}
	sort.Strings(rules)
	want := []string{
		"tcp var.cluster_port from self",
		"tcp var.health_port from var.gwlb_subnet_cidrs",
		"tcp var.metrics_port from ingress.value",
		"udp 6081 from var.gwlb_subnet_cidrs",
		"udp var.cluster_port from self",
	}
	if !slices.Equal(rules, want) {
		t.Errorf("ingress rules:\n  %s\nwant:\n  %s", strings.Join(rules, "\n  "), strings.Join(want, "\n  "))
	}
	if got := literalIntValue(m.variableDefault(t, "cluster_port")); got != 7946 {
		t.Errorf("cluster_port default %d, want 7946", got)
	}
	metrics := m.block(t, "resource", "aws_security_group", "weir").Body
	for _, d := range metrics.Blocks {
		if d.Type == "dynamic" && d.Labels[0] == "ingress" {
			if got := m.text(attr(t, d.Body, "for_each")); got != "length(var.metrics_cidrs) > 0 ? [var.metrics_cidrs] : []" {
				t.Errorf("metrics ingress for_each = %s (an empty list must make no rule)", got)
			}
		}
	}
}

// TestHCLGWLBApplianceIAM: the role may do exactly what discovery, the
// lifecycle hook and the SSM config need, scoped where AWS allows it.
func TestHCLGWLBApplianceIAM(t *testing.T) {
	m := loadModule(t, "deploy/terraform/modules/gwlb-appliance")
	doc := m.block(t, "data", "aws_iam_policy_document", "weir").Body
	got := map[string]string{} // action -> resources' source text
	for _, st := range nested(doc, "statement") {
		if e, ok := st.Body.Attributes["effect"]; ok && literalString(t, e.Expr) != "Allow" {
			t.Errorf("statement with effect %s", m.text(e.Expr))
		}
		res := m.text(attr(t, st.Body, "resources"))
		for _, a := range stringList(t, attr(t, st.Body, "actions")) {
			if _, dup := got[a]; dup {
				t.Errorf("action %s granted twice", a)
			}
			got[a] = res
		}
	}
	want := map[string]string{
		"ec2:DescribeInstances":               `["*"]`, // Describe* has no resource-level permissions
		"autoscaling:CompleteLifecycleAction": "[local.asg_arn]",
		"ssm:GetParameter":                    "statement.value",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("policy actions and resources:\n  %v\nwant\n  %v", got, want)
	}
	// The ASG ARN in the policy names the module's group.
	locals := m.blocks("locals")[0].Body
	if arn := m.text(attr(t, locals, "asg_arn")); !strings.HasSuffix(arn, `:autoScalingGroup:*:autoScalingGroupName/${local.asg_name}"`) {
		t.Errorf("asg_arn = %s", arn)
	}
	if name := m.text(attr(t, m.block(t, "resource", "aws_autoscaling_group", "weir").Body, "name")); name != "local.asg_name" {
		t.Errorf("ASG name = %s, want local.asg_name (the policy's ARN is built from it)", name)
	}
	// The policy document is the role's only policy.
	if n := len(m.blocks("resource")); n == 0 {
		t.Fatal("no resources")
	}
	var policies []string
	for _, r := range m.blocks("resource") {
		switch r.Labels[0] {
		case "aws_iam_role_policy", "aws_iam_role_policy_attachment", "aws_iam_policy", "aws_iam_policy_attachment":
			policies = append(policies, strings.Join(r.Labels, "."))
		}
	}
	if !slices.Equal(policies, []string{"aws_iam_role_policy.weir"}) {
		t.Errorf("policies %v, want only aws_iam_role_policy.weir", policies)
	}
	if got := m.text(attr(t, m.block(t, "resource", "aws_iam_role_policy", "weir").Body, "policy")); got != "data.aws_iam_policy_document.weir.json" {
		t.Errorf("role policy = %s", got)
	}
	if _, ok := m.block(t, "resource", "aws_iam_role", "weir").Body.Attributes["managed_policy_arns"]; ok {
		t.Error("the role has managed policies")
	}
}

// TestHCLReferences stands in for `terraform validate`: in each module and the
// example, every var., local., data., module. and resource reference names
// something declared, every module call passes only the child's variables and
// all its required ones, and every module output referenced exists.
func TestHCLReferences(t *testing.T) {
	for _, dir := range []string{
		"deploy/terraform/modules/gwlb-appliance",
		"deploy/terraform/modules/mirror-target",
		"deploy/terraform/examples/inspection-vpc",
	} {
		t.Run(filepath.Base(dir), func(t *testing.T) { checkReferences(t, loadModule(t, dir)) })
	}
}

func checkReferences(t *testing.T, m *tfModule) {
	declared := map[string]bool{} // "var.x", "local.x", "data.T.N", "T.N", "module.x"
	dynamicIterators := map[string]bool{}
	modules := map[string]*tfModule{}
	for _, b := range m.bodies {
		for _, blk := range b.Blocks {
			switch blk.Type {
			case "variable":
				declared["var."+blk.Labels[0]] = true
			case "locals":
				for name := range blk.Body.Attributes {
					declared["local."+name] = true
				}
			case "data":
				declared["data."+blk.Labels[0]+"."+blk.Labels[1]] = true
			case "resource":
				declared[blk.Labels[0]+"."+blk.Labels[1]] = true
			case "module":
				declared["module."+blk.Labels[0]] = true
				source := literalString(t, attr(t, blk.Body, "source"))
				modules[blk.Labels[0]] = loadModule(t, filepath.Join(m.dir, source))
			}
		}
	}
	var walk func(body *hclsyntax.Body)
	walk = func(body *hclsyntax.Body) {
		for _, blk := range body.Blocks {
			if blk.Type == "dynamic" {
				dynamicIterators[blk.Labels[0]] = true
			}
			walk(blk.Body)
		}
	}
	for _, b := range m.bodies {
		walk(b)
	}

	check := func(expr hcl.Expression) {
		for _, tr := range expr.Variables() {
			root := tr.RootName()
			name := func(i int) string {
				if i < len(tr) {
					if a, ok := tr[i].(hcl.TraverseAttr); ok {
						return a.Name
					}
				}
				return ""
			}
			var ref string
			switch root {
			case "each", "count", "path", "self", "terraform":
				continue
			case "var", "local", "module":
				ref = root + "." + name(1)
			case "data":
				ref = "data." + name(1) + "." + name(2)
			default:
				if dynamicIterators[root] {
					continue
				}
				ref = root + "." + name(1)
			}
			if !declared[ref] {
				t.Errorf("%s: %s is not declared", tr.SourceRange(), ref)
				continue
			}
			if root == "module" {
				child := modules[name(1)]
				if out := name(2); !declared2(child, "output", out) {
					t.Errorf("%s: module %s has no output %q", tr.SourceRange(), name(1), out)
				}
			}
		}
	}
	var walkExprs func(body *hclsyntax.Body, in string)
	walkExprs = func(body *hclsyntax.Body, in string) {
		for name, a := range body.Attributes {
			if in == "variable" && name == "type" {
				continue // a type constraint (string, object({...})), not references
			}
			if in == "lifecycle" && name == "ignore_changes" {
				continue // the resource's own arguments, not references
			}
			check(a.Expr)
		}
		for _, blk := range body.Blocks {
			walkExprs(blk.Body, blk.Type)
		}
	}
	for _, b := range m.bodies {
		walkExprs(b, "")
	}

	for _, call := range m.blocks("module") {
		child := modules[call.Labels[0]]
		for name := range call.Body.Attributes {
			switch name {
			case "source", "version", "count", "for_each", "depends_on", "providers":
				continue
			}
			if !declared2(child, "variable", name) {
				t.Errorf("module %s: %s is not a variable of %s", call.Labels[0], name, child.dir)
			}
		}
		for _, v := range child.blocks("variable") {
			if _, hasDefault := v.Body.Attributes["default"]; !hasDefault {
				if _, given := call.Body.Attributes[v.Labels[0]]; !given {
					t.Errorf("module %s: required variable %s not given", call.Labels[0], v.Labels[0])
				}
			}
		}
	}
}

func declared2(m *tfModule, typ, name string) bool {
	for _, b := range m.blocks(typ) {
		if len(b.Labels) == 1 && b.Labels[0] == name {
			return true
		}
	}
	return false
}

// TestHCLMirrorTargetModule: the NLB listens for VXLAN on UDP 4789, and the
// filter variable has weir's filter structure: evaluating the module's rule
// expansion on examples/filters/web.json gives one rule per AWS rule, with the
// direction of its list.
func TestHCLMirrorTargetModule(t *testing.T) {
	m := loadModule(t, "deploy/terraform/modules/mirror-target")
	for _, r := range []string{"aws_lb_listener", "aws_lb_target_group"} {
		b := m.block(t, "resource", r, "vxlan").Body
		if p, port := literalString(t, attr(t, b, "protocol")), literalInt(t, attr(t, b, "port")); p != "UDP" || port != 4789 {
			t.Errorf("%s: %s %d, want UDP 4789", r, p, port)
		}
	}
	if got := literalString(t, attr(t, m.block(t, "resource", "aws_lb", "mirror").Body, "load_balancer_type")); got != "network" {
		t.Errorf("mirror load balancer type %q, want network", got)
	}
	target := m.block(t, "resource", "aws_ec2_traffic_mirror_target", "weir").Body
	for _, a := range []string{"network_load_balancer_arn", "gateway_load_balancer_endpoint_id"} {
		attr(t, target, a)
	}

	// The rule fields weir reads (dataplane/mirror/filter.go) against the
	// variable's rule object: the same, but TrafficDirection, which is that of
	// the list the rule is in, plus the Description AWS keeps.
	src, err := os.ReadFile("dataplane/mirror/filter.go")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`p\.fields\(n, ("RuleNumber",[^)]*)\)`).FindSubmatch(src)
	if call == nil {
		t.Fatal("dataplane/mirror/filter.go: the rule's field list was not found; update this test")
	}
	var weirFields []string
	for _, f := range regexp.MustCompile(`"(\w+)"`).FindAllSubmatch(call[1], -1) {
		if string(f[1]) != "TrafficDirection" {
			weirFields = append(weirFields, string(f[1]))
		}
	}
	weirFields = append(weirFields, "Description")
	sort.Strings(weirFields)
	filterType := attr(t, m.block(t, "variable", "filter").Body, "type")
	for _, list := range []string{"IngressFilterRules", "EgressFilterRules"} {
		fields := objectTypeKeys(t, objectTypeAttr(t, filterType, list))
		sort.Strings(fields)
		if !slices.Equal(fields, weirFields) {
			t.Errorf("filter.%s rule fields %v, weir reads %v", list, fields, weirFields)
		}
	}

	// Evaluate local.filter_rules on web.json as Terraform would.
	data, err := os.ReadFile("examples/filters/web.json")
	if err != nil {
		t.Fatal(err)
	}
	ty, err := ctyjson.ImpliedType(data)
	if err != nil {
		t.Fatal(err)
	}
	file, err := ctyjson.Unmarshal(data, ty)
	if err != nil {
		t.Fatal(err)
	}
	filter := file.GetAttr("TrafficMirrorFilters").Index(cty.NumberIntVal(0))
	locals := m.blocks("locals")[0].Body
	rules, diags := attr(t, locals, "filter_rules").Value(&hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{"filter": filter})},
		Functions: map[string]function.Function{"merge": stdlib.MergeFunc},
	})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	got := map[string]string{}
	for it := rules.ElementIterator(); it.Next(); {
		k, v := it.Element()
		n, _ := v.GetAttr("RuleNumber").AsBigFloat().Int64()
		got[k.AsString()] = fmt.Sprintf("%s %d %s", v.GetAttr("TrafficDirection").AsString(), n, v.GetAttr("RuleAction").AsString())
	}
	want := map[string]string{
		"ingress-100": "ingress 100 reject", "ingress-200": "ingress 200 accept",
		"egress-100": "egress 100 reject", "egress-150": "egress 150 reject", "egress-200": "egress 200 accept",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("filter_rules from web.json:\n  %v\nwant\n  %v", got, want)
	}
}

// objectTypeAttr finds attribute name's type in an object({...}) type
// expression, through optional(...) and list(...).
func objectTypeAttr(t *testing.T, expr hclsyntax.Expression, name string) hclsyntax.Expression {
	t.Helper()
	obj := unwrapType(expr)
	for _, item := range obj.Items {
		if hcl.ExprAsKeyword(item.KeyExpr) == name {
			return item.ValueExpr
		}
	}
	t.Fatalf("%s: no attribute %s", expr.Range(), name)
	return nil
}

// objectTypeKeys lists the attributes of an object type expression.
func objectTypeKeys(t *testing.T, expr hclsyntax.Expression) []string {
	t.Helper()
	var keys []string
	for _, item := range unwrapType(expr).Items {
		keys = append(keys, hcl.ExprAsKeyword(item.KeyExpr))
	}
	return keys
}

func unwrapType(expr hclsyntax.Expression) *hclsyntax.ObjectConsExpr {
	for {
		switch e := expr.(type) {
		case *hclsyntax.FunctionCallExpr: // object(...), list(...), optional(...)
			expr = e.Args[0]
		case *hclsyntax.ObjectConsExpr:
			return e
		default:
			return &hclsyntax.ObjectConsExpr{}
		}
	}
}

// TestHCLGWLBApplianceASGAttachable: modules/mirror-target attaches its NLB
// target group to "the weir Auto Scaling group" with aws_autoscaling_attachment.
// The aws provider (5.x) requires an aws_autoscaling_group that such an
// attachment names to ignore changes to load_balancers and target_group_arns;
// otherwise every apply of gwlb-appliance detaches the NLB's target group again
// (the inline list is authoritative) and the next apply of the attachment
// re-attaches it: mirrored traffic flaps. The GWLB's target group must still
// be attached, then by an attachment of its own (an ignored inline list would
// not follow a replaced target group).
func TestHCLGWLBApplianceASGAttachable(t *testing.T) {
	m := loadModule(t, "deploy/terraform/modules/gwlb-appliance")
	asg := m.block(t, "resource", "aws_autoscaling_group", "weir").Body
	var ignored []string
	for _, lc := range nested(asg, "lifecycle") {
		if a, ok := lc.Body.Attributes["ignore_changes"]; ok {
			ignored = append(ignored, strings.Split(strings.Trim(m.text(a.Expr), "[]"), ",")...)
		}
	}
	for i := range ignored {
		ignored[i] = strings.TrimSpace(ignored[i])
	}
	for _, want := range []string{"load_balancers", "target_group_arns"} {
		if !slices.Contains(ignored, want) {
			t.Errorf("aws_autoscaling_group.weir does not ignore changes to %s: mirror-target's aws_autoscaling_attachment to it would be undone at every apply", want)
		}
	}
	if _, inline := asg.Attributes["target_group_arns"]; inline {
		t.Error("aws_autoscaling_group.weir sets target_group_arns inline: with the list ignored, a replaced GWLB target group would never be attached; use aws_autoscaling_attachment")
	}
	var attached bool
	for _, r := range m.blocks("resource") {
		if r.Labels[0] != "aws_autoscaling_attachment" {
			continue
		}
		if m.text(attr(t, r.Body, "lb_target_group_arn")) == "aws_lb_target_group.weir.arn" &&
			strings.HasPrefix(m.text(attr(t, r.Body, "autoscaling_group_name")), "aws_autoscaling_group.weir.") {
			attached = true
		}
	}
	if !attached {
		t.Error("no aws_autoscaling_attachment of aws_lb_target_group.weir to aws_autoscaling_group.weir")
	}
}
