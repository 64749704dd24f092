package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	colorDistq    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorProducer = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorPython   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorPhases   = []color.Color{colorDistq, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, colorProducer, colorPython}
	// The floors are grey and dashed: what the machine allows, not us.
	colorFloors = []color.Color{color.Gray{Y: 0x60}, color.Gray{Y: 0xa0}}
)

// WritePlot draws dir/bench.png: throughput against slaves for distq and
// the Python recipe on the left, latency percentiles on the right; both on
// log scales.
func WritePlot(dir string, r *Report) (string, error) {
	left, err := throughputPlot(r)
	if err != nil {
		return "", err
	}
	right, err := latencyPlot(r)
	if err != nil {
		return "", err
	}
	img := vgimg.New(11*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 3, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	plots := [][]*plot.Plot{{left, right}}
	canvases := plot.Align(plots, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])

	name := filepath.Join(dir, "bench.png")
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return "", err
	}
	return name, f.Close()
}

func throughputPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Throughput (median of runs)"
	p.X.Label.Text = "slave processes K"
	p.Y.Label.Text = "tasks/s (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{fmtSI}
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 1, Label: "1"}, {Value: 2, Label: "2"}, {Value: 3, Label: ""}, {Value: 4, Label: "4"}}
	p.Legend.Top, p.Legend.Left = false, false // bottom right: below distq, right of Python
	p.Legend.YOffs = vg.Points(6)
	p.Add(plotter.NewGrid())

	var lo, hi []float64
	series := func(scenario, label string, c color.Color, shape draw.GlyphDrawer) error {
		var xys plotter.XYs
		for _, t := range r.Throughput {
			if t.Scenario == scenario && t.Median > 0 {
				xys = append(xys, plotter.XY{X: float64(t.Slaves), Y: t.Median})
				lo, hi = append(lo, t.Min), append(hi, t.Max)
			}
		}
		if len(xys) == 0 {
			return nil
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, pts.Color, pts.Shape, pts.Radius = c, c, shape, vg.Points(3.5)
		if len(xys) == 1 {
			p.Add(pts)
			p.Legend.Add(label, pts)
			return nil
		}
		p.Add(line, pts)
		p.Legend.Add(label, line, pts)
		return nil
	}
	if err := series(scenarioDemo, "distq master -demo", colorDistq, draw.CircleGlyph{}); err != nil {
		return nil, err
	}
	if err := series(scenarioProducer, "distq separate producer", colorProducer, draw.SquareGlyph{}); err != nil {
		return nil, err
	}
	if err := series(scenarioPython, "Python BaseManager recipe", colorPython, draw.TriangleGlyph{}); err != nil {
		return nil, err
	}
	setLogRange(&p.Y, lo, hi)
	p.X.Min, p.X.Max = 0.7, 4.3
	return p, nil
}

func latencyPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency put → result (2 slaves)"
	p.Y.Label.Text = "ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }}
	p.NominalX("p50", "p99", "p99.9", "max")
	p.Legend.Top, p.Legend.Left = true, true // top left: tails rise to the right
	p.Add(plotter.NewGrid())
	var vals []float64
	floors, phases := 0, 0
	for _, l := range r.Latency {
		ys := []float64{l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs}
		var xys plotter.XYs
		for x, y := range ys {
			if y > 0 {
				xys = append(xys, plotter.XY{X: float64(x), Y: y})
				vals = append(vals, y)
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		var c color.Color
		if strings.HasPrefix(l.Label, "floor") {
			c = colorFloors[floors%len(colorFloors)]
			floors++
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		} else {
			c = colorPhases[phases%len(colorPhases)]
			phases++
		}
		line.Color, pts.Color, pts.Radius = c, c, vg.Points(3)
		p.Add(line, pts)
		p.Legend.Add(fmt.Sprintf("%s/s (%s)", fmtRate(l.AchievedRate), l.Label), line, pts)
	}
	setLogRange(&p.Y, vals, vals)
	p.X.Min, p.X.Max = -0.3, 3.3
	return p, nil
}

// setLogRange sets a log axis to span the values with some room, or a
// harmless default when there are none (a log axis cannot include 0).
func setLogRange(a *plot.Axis, lo, hi []float64) {
	minV, maxV := math.Inf(1), math.Inf(-1)
	for _, v := range lo {
		if v > 0 {
			minV = math.Min(minV, v)
		}
	}
	for _, v := range hi {
		if v > 0 {
			maxV = math.Max(maxV, v)
		}
	}
	if math.IsInf(minV, 1) || math.IsInf(maxV, -1) {
		minV, maxV = 1, 10
	}
	a.Min = math.Pow(10, math.Floor(math.Log10(minV))) * 0.999 // keep the lowest tick inside
	a.Max = math.Pow(10, math.Ceil(math.Log10(maxV*1.05)))
	if a.Max <= a.Min {
		a.Max = a.Min * 10
	}
}

// logTicks are plot.LogTicks with the powers of ten labelled by format.
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.LogTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = t.format(ticks[i].Value)
		}
	}
	return ticks
}

// fmtSI labels 1000 as "1k" and 1e6 as "1M".
func fmtSI(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
}

// Colors of the closed-loop plot's systems: distq's rows in blues, the
// peers in their own colors, the floor grey and dashed.
var closedColors = map[string]color.Color{
	keyDistq:       colorDistq,
	keyDistqIntvl:  color.RGBA{R: 0x6b, G: 0xae, B: 0xd6, A: 0xff},
	keyDistqFsync:  color.RGBA{R: 0x08, G: 0x30, B: 0x6b, A: 0xff},
	keyRedis:       colorPython,
	keyNATS:        color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	keyNATSSyncAll: color.RGBA{R: 0xa6, G: 0x4b, B: 0x00, A: 0xff},
}

// WriteClosedLoopPlot draws dir/closed-loop.png, one task in flight: the
// percentiles of every system measured in the run, distq's beside its
// peers', on a log scale. It draws nothing and returns "" when no
// closed-loop row was measured.
func WriteClosedLoopPlot(dir string, r *Report) (string, error) {
	p := plot.New()
	p.Title.Text = "One task in flight: put → its result (2 workers each)"
	p.Y.Label.Text = "ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }}
	p.NominalX("p50", "p90", "p99", "p99.9")
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	var vals []float64
	for _, c := range r.ClosedLoop {
		if c.Skipped != "" || c.Count == 0 {
			continue
		}
		var xys plotter.XYs
		for x, y := range []float64{c.P50Ms, c.P90Ms, c.P99Ms, c.P999Ms} {
			if y > 0 {
				xys = append(xys, plotter.XY{X: float64(x), Y: y})
				vals = append(vals, y)
			}
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return "", err
		}
		col, ok := closedColors[c.Key]
		if !ok {
			col = colorFloors[0]
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		line.Color, pts.Color, pts.Radius = col, col, vg.Points(3)
		p.Add(line, pts)
		label, ok := shortNames[c.Key]
		if !ok {
			label = c.System + " (" + c.Config + ")"
		}
		p.Legend.Add(label, line, pts)
	}
	if len(vals) == 0 {
		return "", nil
	}
	setLogRange(&p.Y, vals, vals)
	p.X.Min, p.X.Max = -0.3, 3.3
	name := filepath.Join(dir, "closed-loop.png")
	if err := p.Save(8*vg.Inch, 5*vg.Inch, name); err != nil {
		return "", err
	}
	return name, nil
}
