package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// The driver process (Config.DriverProcess) runs the load clients of the
// bearer targets: this binary's "bench drive" (Drive), started by Run,
// its standard input and output a pipe each, its standard error Run's
// Progress. Both directions carry newline-delimited JSON, one value per
// line:
//
//  1. Run writes a driverSetup: the connections per target, the
//     Authorization values, and the name and URL of every target the
//     driver drives.
//  2. Run then writes one order at a time and reads its answer before it
//     writes the next: exactly one driverReply line per order.
//  3. Run closes the driver's standard input; the driver exits, status 0.
//
// A driver that cannot parse a line, or is given an unknown target or op,
// answers a driverReply with Error set and exits with status 1. A driver
// whose standard input closes, or whose parent dies (SIGKILL on Linux,
// see driverProcAttr), ends.

// Ops of an order.
const (
	opRound = "round" // a closed-loop round (target.round)
	opPaced = "paced" // a fixed-rate round (target.pacedRound)
	opEach  = "each"  // one request per token (target.each)
	// opTogether drives several targets at once on one schedule
	// (together): Targets names them, Target is empty, and the reply's
	// Together answers for each, in the order of Targets.
	opTogether = "together"
)

// driverSetup is the first line Run writes to the driver.
type driverSetup struct {
	Conns   int          `json:"conns"`
	Auths   []string     `json:"auths"` // the Authorization values every target is driven with
	Targets []driverDest `json:"targets"`
}

// driverDest is one target the driver drives.
type driverDest struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// order is one command to the driver: drive target Target.
type order struct {
	Op       string        `json:"op"` // opRound, opPaced or opEach
	Target   string        `json:"target"`
	Targets  []string      `json:"targets,omitempty"`     // opTogether
	Duration time.Duration `json:"duration_ns,omitempty"` // opRound and opPaced
	Rate     float64       `json:"rate,omitempty"`        // opPaced: requests per second in all
	AtLeast  int           `json:"at_least,omitempty"`    // opEach
	Auths    int           `json:"auths,omitempty"`       // opEach: the first Auths of driverSetup.Auths
}

// driverReply is the driver's answer to one order. Failed and FirstError
// are the failed requests of the order (warm-up included for opEach) and
// the first one's message; Round is the round's result (zero for opEach).
// Error, if set, means the order was not carried out.
type driverReply struct {
	Round      Round  `json:"round"`
	Failed     int64  `json:"failed,omitempty"`
	FirstError string `json:"first_error,omitempty"`
	Error      string `json:"error,omitempty"`
	// Together is the answer of opTogether: one reply per target, in
	// the order of the order's Targets (Round, Failed, FirstError).
	Together []driverReply `json:"together,omitempty"`
}

// driver is the parent's end of a running driver process.
type driver struct {
	name string // for errors: the command
	cmd  *exec.Cmd
	in   io.WriteCloser
	enc  *json.Encoder
	out  *bufio.Scanner

	waited  sync.Once
	waitErr error // how it exited, once waited
}

// startDriver starts argv as the driver process, with stderr its
// standard error, and sends it setup.
func startDriver(argv []string, stderr io.Writer, setup driverSetup) (*driver, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	cmd.SysProcAttr = driverProcAttr()
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("loadgen: driver process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadgen: driver process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start driver process %s: %w", argv[0], err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	d := &driver{name: argv[0], cmd: cmd, in: in, enc: json.NewEncoder(in), out: sc}
	if err := d.enc.Encode(setup); err != nil {
		return nil, d.died(err)
	}
	return d, nil
}

// selfDriver starts this binary's "bench drive" as the driver process.
func selfDriver(stderr io.Writer, setup driverSetup) (*driver, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("loadgen: driver process: %w", err)
	}
	return startDriver([]string{exe, "bench", "drive"}, stderr, setup)
}

// do sends o and returns the driver's reply. A driver that exits or
// answers something else than a driverReply is an error naming it; so
// is a reply with Error set. If ctx ends first, do kills the driver and
// returns ctx's error.
func (d *driver) do(ctx context.Context, o order) (driverReply, error) {
	stop := context.AfterFunc(ctx, func() { d.cmd.Process.Kill() })
	defer stop()
	if err := d.enc.Encode(o); err != nil {
		return driverReply{}, d.died(err)
	}
	if !d.out.Scan() {
		if err := ctx.Err(); err != nil {
			return driverReply{}, err
		}
		return driverReply{}, d.died(d.out.Err())
	}
	var rep driverReply
	if err := strictUnmarshal(d.out.Bytes(), &rep); err != nil {
		return driverReply{}, fmt.Errorf("loadgen: driver process %s: bad reply %.80q: %w", d.name, d.out.Bytes(), err)
	}
	if rep.Error != "" {
		return driverReply{}, fmt.Errorf("loadgen: driver process %s: %s", d.name, rep.Error)
	}
	return rep, nil
}

// died returns the error of a driver that stopped answering: how it
// exited, once it has, else err.
func (d *driver) died(err error) error {
	d.in.Close()
	werr := d.wait()
	if werr == nil {
		werr = err
	}
	if werr == nil {
		werr = errors.New("exited without a reply")
	}
	return fmt.Errorf("loadgen: driver process %s: %w", d.name, werr)
}

// wait waits for the driver to exit, killing it after 5 s, and returns
// how it exited; again, the same.
func (d *driver) wait() error {
	d.waited.Do(func() {
		t := time.AfterFunc(5*time.Second, func() { d.cmd.Process.Kill() })
		defer t.Stop()
		d.waitErr = d.cmd.Wait()
	})
	return d.waitErr
}

// close ends the driver (closes its standard input) and waits for it.
func (d *driver) close() error {
	d.in.Close()
	if err := d.wait(); err != nil {
		return fmt.Errorf("loadgen: driver process %s: %w", d.name, err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value of data into v, refusing
// unknown fields.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Drive is the driver process ("latchkey bench drive", hidden): it reads
// a driverSetup and then orders from in, one JSON value per line, and
// writes a driverReply for each to out, until in ends (nil) or a line is
// bad (an error, after a reply saying so). See driver for the protocol.
func Drive(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<30)
	enc := json.NewEncoder(out)
	refuse := func(err error) error {
		enc.Encode(driverReply{Error: err.Error()})
		return fmt.Errorf("loadgen: drive: %w", err)
	}
	if !sc.Scan() {
		return sc.Err()
	}
	var setup driverSetup
	if err := strictUnmarshal(sc.Bytes(), &setup); err != nil {
		return refuse(fmt.Errorf("bad setup: %w", err))
	}
	if setup.Conns < 1 || setup.Conns > MaxConns || len(setup.Auths) == 0 {
		return refuse(fmt.Errorf("bad setup: %d connections (want 1 to %d) and %d Authorization values (want some)", setup.Conns, MaxConns, len(setup.Auths)))
	}
	targets := make(map[string]*target, len(setup.Targets))
	for _, dst := range setup.Targets {
		t, err := newTarget(dst.Name, dst.URL, setup.Conns)
		if err != nil {
			return refuse(err)
		}
		defer t.tr.CloseIdleConnections()
		targets[dst.Name] = t
	}
	for sc.Scan() {
		var o order
		if err := strictUnmarshal(sc.Bytes(), &o); err != nil {
			return refuse(fmt.Errorf("bad order %.80q: %w", sc.Bytes(), err))
		}
		rep, err := carry(ctx, targets, o, setup)
		if err != nil {
			return refuse(err)
		}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("loadgen: drive: %w", err)
		}
	}
	return sc.Err()
}

// carry carries out o on the targets it names, of targets, and returns
// the reply, with the failures counted on each target during o.
func carry(ctx context.Context, targets map[string]*target, o order, setup driverSetup) (driverReply, error) {
	if o.Op == opTogether {
		return carryTogether(ctx, targets, o, setup)
	}
	t := targets[o.Target]
	if t == nil {
		return driverReply{}, fmt.Errorf("order %s: no target %q", o.Op, o.Target)
	}
	if len(o.Targets) > 0 {
		return driverReply{}, fmt.Errorf("order %s: targets are for %s only", o.Op, opTogether)
	}
	t.resetFailures()
	var rep driverReply
	switch {
	case o.Op == opRound && o.Duration > 0:
		rep.Round = t.round(ctx, setup.Conns, o.Duration, setup.Auths)
	case o.Op == opPaced && o.Duration > 0 && o.Rate > 0:
		rep.Round = t.pacedRound(ctx, setup.Conns, o.Duration, setup.Auths, o.Rate)
	case o.Op == opEach && o.Auths > 0 && o.Auths <= len(setup.Auths):
		t.each(ctx, setup.Conns, o.AtLeast, setup.Auths[:o.Auths])
	default:
		return driverReply{}, fmt.Errorf("bad order %+v", o)
	}
	if err := ctx.Err(); err != nil {
		return driverReply{}, err
	}
	t.failures(&rep)
	return rep, nil
}

// carryTogether carries out an opTogether order.
func carryTogether(ctx context.Context, targets map[string]*target, o order, setup driverSetup) (driverReply, error) {
	if o.Target != "" || len(o.Targets) == 0 || o.Duration <= 0 || o.Rate <= 0 {
		return driverReply{}, fmt.Errorf("bad order %+v", o)
	}
	ts := make([]*target, len(o.Targets))
	for i, name := range o.Targets {
		if ts[i] = targets[name]; ts[i] == nil {
			return driverReply{}, fmt.Errorf("order %s: no target %q", o.Op, name)
		}
		if slices.Contains(ts[:i], ts[i]) {
			return driverReply{}, fmt.Errorf("order %s: target %q twice", o.Op, name)
		}
		ts[i].resetFailures()
	}
	rounds := together(ctx, ts, setup.Conns, o.Duration, setup.Auths, o.Rate)
	if err := ctx.Err(); err != nil {
		return driverReply{}, err
	}
	var rep driverReply
	for i, t := range ts {
		r := driverReply{Round: rounds[i]}
		t.failures(&r)
		rep.Together = append(rep.Together, r)
	}
	return rep, nil
}

// resetFailures forgets the failures counted on t so far.
func (t *target) resetFailures() {
	t.errs.Store(0)
	t.firstErr.Store(nil)
}

// failures puts the failures counted on t into rep.
func (t *target) failures(rep *driverReply) {
	rep.Failed = t.errs.Load()
	if e := t.firstErr.Load(); e != nil {
		rep.FirstError = *e
	}
}

// remote drives target t by the driver process: it carries out o there
// and counts the failures it reports on t.
func (t *target) remote(ctx context.Context, d *driver, o order) (Round, error) {
	o.Target = t.name
	rep, err := d.do(ctx, o)
	if err != nil {
		return Round{}, err
	}
	t.countFailures(rep)
	return rep.Round, nil
}

// remoteTogether drives ts at once by the driver process (opTogether)
// and counts the failures it reports on each.
func remoteTogether(ctx context.Context, d *driver, ts []*target, o order) ([]Round, error) {
	o.Op = opTogether
	for _, t := range ts {
		o.Targets = append(o.Targets, t.name)
	}
	rep, err := d.do(ctx, o)
	if err != nil {
		return nil, err
	}
	if len(rep.Together) != len(ts) {
		return nil, fmt.Errorf("loadgen: driver process %s: %d answers to an order for %d targets", d.name, len(rep.Together), len(ts))
	}
	rounds := make([]Round, len(ts))
	for i, t := range ts {
		t.countFailures(rep.Together[i])
		rounds[i] = rep.Together[i].Round
	}
	return rounds, nil
}

// countFailures adds the failures a driver reported to t's.
func (t *target) countFailures(rep driverReply) {
	t.errs.Add(rep.Failed)
	if rep.FirstError != "" {
		t.firstErr.CompareAndSwap(nil, &rep.FirstError)
	}
}

// driverDests lists the targets of ts that a driver process drives: all
// but the DPoP target, whose proofs are signed in this process.
func driverDests(ts []*target) []driverDest {
	var dests []driverDest
	for _, t := range ts {
		if t.prove == nil && !slices.ContainsFunc(dests, func(d driverDest) bool { return d.Name == t.name }) {
			dests = append(dests, driverDest{Name: t.name, URL: t.url.String()})
		}
	}
	return dests
}
