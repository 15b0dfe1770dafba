package simulator

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// histogramKeys are the nine keys every answer must carry.
var histogramKeys = []string{"N", "NE", "E", "SE", "S", "SW", "W", "NW", "flat"}

// checkAspectInvariants checks what holds for every successful answer.
func checkAspectInvariants(t *testing.T, r *AspectResult) {
	t.Helper()
	if len(r.Histogram) != len(histogramKeys) {
		t.Errorf("histogram has %d keys, want 9: %v", len(r.Histogram), r.Histogram)
	}
	sum := 0.0
	for _, k := range histogramKeys {
		v, ok := r.Histogram[k]
		if !ok {
			t.Errorf("histogram lacks %q", k)
		}
		if v < 0 || v > 1 {
			t.Errorf("histogram[%s] = %v, outside [0, 1]", k, v)
		}
		sum += v
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("histogram sums to %.15f, want 1", sum)
	}
	if r.FlatFraction != r.Histogram["flat"] {
		t.Errorf("flat_fraction %v != histogram[flat] %v", r.FlatFraction, r.Histogram["flat"])
	}
	if r.MeanAspectDeg < 0 || r.MeanAspectDeg >= 360 || math.Round(r.MeanAspectDeg*10) != r.MeanAspectDeg*10 {
		t.Errorf("mean_aspect_deg = %v, want [0, 360) rounded to 0.1", r.MeanAspectDeg)
	}
	if r.CellCount <= 0 || r.CellCount > aspectMaxCells {
		t.Errorf("cell_count = %d", r.CellCount)
	}
}

// TestAspectContractExample checks the contract's example request.
func TestAspectContractExample(t *testing.T) {
	req := AspectRequest{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.2, 40.0}, ScaleM: 30}
	r, err := computeAspect(req)
	if err != nil {
		t.Fatal(err)
	}
	checkAspectInvariants(t, r)
	// 0.2° of longitude at 39.9°N is 17081 m (570 cells), 0.2° of latitude 22108 m (737 cells).
	if r.CellCount != 570*737 {
		t.Errorf("cell_count = %d, want %d", r.CellCount, 570*737)
	}
	if r.CoverageID != "dem_30m" || r.ScaleM != 30 || !slices.Equal(r.BBox, req.BBox) {
		t.Errorf("echo = %q %v %v", r.CoverageID, r.ScaleM, r.BBox)
	}
	if r.FlatFraction <= 0 || r.FlatFraction >= 1 {
		t.Errorf("flat_fraction = %v, want some flat and some sloped cells", r.FlatFraction)
	}
	for _, k := range aspectBins {
		if r.Histogram[k] == 0 {
			t.Errorf("histogram[%s] = 0 on a varied landscape", k)
		}
	}
}

// TestAspectCoverages checks the coverage list and that every coverage answers its own landscape.
func TestAspectCoverages(t *testing.T) {
	want := []string{"dem_30m", "dem_90m", "srtm_30m"}
	if got := Coverages(); !slices.Equal(got, want) {
		t.Fatalf("Coverages() = %v, want %v", got, want)
	}
	bbox := []float64{10, 45, 10.3, 45.2}
	var prev *AspectResult
	for _, id := range want {
		t.Run(id, func(t *testing.T) {
			r, err := computeAspect(AspectRequest{CoverageID: id, BBox: bbox})
			if err != nil {
				t.Fatal(err)
			}
			checkAspectInvariants(t, r)
			if r.ScaleM != aspectDefaultScaleM {
				t.Errorf("scale_m = %v, want the default %d", r.ScaleM, aspectDefaultScaleM)
			}
			if prev != nil && reflect.DeepEqual(prev.Histogram, r.Histogram) {
				t.Errorf("%s answers the same histogram as the previous coverage", id)
			}
			prev = r
		})
	}
}

// TestAspectDeterministic checks that a request answers the same, bit for bit, every time.
func TestAspectDeterministic(t *testing.T) {
	reqs := []AspectRequest{
		{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.2, 40.0}},
		{CoverageID: "srtm_30m", BBox: []float64{-120, 35, -119.8, 35.3}, ScaleM: 45.5},
		{CoverageID: "dem_90m", BBox: []float64{30, -20, 31, -19.99}, ScaleM: 90}, // wide: transposed streaming
	}
	for _, req := range reqs {
		t.Run(req.CoverageID, func(t *testing.T) {
			a, err := computeAspect(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := computeAspect(req)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range histogramKeys {
				if math.Float64bits(a.Histogram[k]) != math.Float64bits(b.Histogram[k]) {
					t.Errorf("histogram[%s]: %v then %v", k, a.Histogram[k], b.Histogram[k])
				}
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("answers differ:\n%+v\n%+v", a, b)
			}
		})
	}
}

// Test points of dem_30m, found by scanning and kept as documentation of the
// synthetic landscape: a lake bed (clamped at the floor, all flat) and an
// east-facing hillside.
var (
	lakeBedBBox  = []float64{116.00, 39.83, 116.01, 39.84}
	hillsideBBox = []float64{116.13, 39.81, 116.14, 39.82}
)

// TestAspectFlatVersusSloped checks the documented lake bed and hillside of dem_30m.
func TestAspectFlatVersusSloped(t *testing.T) {
	lake, err := computeAspect(AspectRequest{CoverageID: "dem_30m", BBox: lakeBedBBox})
	if err != nil {
		t.Fatal(err)
	}
	checkAspectInvariants(t, lake)
	if lake.FlatFraction != 1 || lake.MeanAspectDeg != 0 {
		t.Errorf("lake bed: flat_fraction %v mean %v, want 1 and 0", lake.FlatFraction, lake.MeanAspectDeg)
	}
	hill, err := computeAspect(AspectRequest{CoverageID: "dem_30m", BBox: hillsideBBox})
	if err != nil {
		t.Fatal(err)
	}
	checkAspectInvariants(t, hill)
	if hill.FlatFraction != 0 || hill.Histogram["E"] < 0.9 || math.Abs(hill.MeanAspectDeg-90) > 5 {
		t.Errorf("hillside: flat %v E %v mean %v, want no flat cells, mostly east, mean near 90",
			hill.FlatFraction, hill.Histogram["E"], hill.MeanAspectDeg)
	}
}

// plane answers a field z = 1000 + ax·x + ay·y where x and y are meters
// east and north on the ground of a grid at mid latitude midLat. (The
// field's own x coordinate is equirectangular, lon·metersPerDegLon, so a
// ground meter east spans 1/cos(midLat) of its units.)
func plane(ax, ay, midLat float64) *demField {
	ax *= math.Cos(midLat * math.Pi / 180)
	return &demField{floor: -1e9, base: 1000, terms: []demTerm{
		{func(x float64) float64 { return ax * x }, constOne},
		{constOne, func(y float64) float64 { return ay * y }},
	}}
}

// TestAspectUniformTilt checks planes of known orientation on tall and wide (transposed) grids.
func TestAspectUniformTilt(t *testing.T) {
	tall := []float64{116, 39.8, 116.05, 40.0} // more rows than columns
	wide := []float64{116, 39.8, 116.3, 39.85} // more columns than rows: transposed
	s := math.Sqrt(0.5)
	cases := []struct {
		name   string
		ax, ay float64
		bin    string // all cells in this bin
		mean   float64
		isFlat bool
	}{
		{"falls to the east", -0.05, 0, "E", 90, false},
		{"falls to the west", 0.05, 0, "W", 270, false},
		{"rises to the north", 0, 0.05, "S", 180, false},
		{"falls to the north", 0, -0.05, "N", 0, false},
		{"falls to the north-west", 0.05 * s, -0.05 * s, "NW", 315, false},
		{"falls to the south-east", -0.05 * s, 0.05 * s, "SE", 135, false},
		{"gentle 0.3 degree tilt is flat", -0.005, 0, "flat", 0, true},
		{"level", 0, 0, "flat", 0, true},
	}
	for _, c := range cases {
		for _, bb := range [][]float64{tall, wide} {
			g, cells := newAspectGrid(bb, 30)
			t.Run(c.name+"/"+gridShape(g), func(t *testing.T) {
				st := analyzeAspect(plane(c.ax, c.ay, (bb[1]+bb[3])/2), g)
				if int64(st.cells) != cells {
					t.Fatalf("analysed %d cells of %d", st.cells, cells)
				}
				r := aspectResult("plane", bb, 30, st)
				checkAspectInvariants(t, r)
				if r.Histogram[c.bin] != 1 {
					t.Errorf("histogram = %v, want all %s", r.Histogram, c.bin)
				}
				if r.MeanAspectDeg != c.mean {
					t.Errorf("mean_aspect_deg = %v, want %v", r.MeanAspectDeg, c.mean)
				}
			})
		}
	}
}

// gridShape names the streaming direction of a grid in test names.
func gridShape(g aspectGrid) string {
	if g.cols > g.rows {
		return "wide"
	}
	return "tall"
}

// referenceAspect is a direct, unstreamed Horn computation over the whole
// grid, sampling the field point by point.
func referenceAspect(f *demField, g aspectGrid) aspectStats {
	z := func(i, j int) float64 { return f.at(g.lon(j), g.lat(i)) }
	tanFlat := math.Tan(aspectFlatSlopeDeg * math.Pi / 180)
	tan225 := math.Tan(22.5 * math.Pi / 180)
	var st aspectStats
	for i := range g.rows {
		for j := range g.cols {
			a, b, c := z(i-1, j-1), z(i-1, j), z(i-1, j+1)
			d, e, ff := z(i, j-1), z(i, j), z(i, j+1)
			gg, h, k := z(i+1, j-1), z(i+1, j), z(i+1, j+1)
			_ = e
			dzdx := ((c + 2*ff + k) - (a + 2*d + gg)) / (8 * g.cellM)
			dzdy := ((a + 2*b + c) - (gg + 2*h + k)) / (8 * g.cellM)
			st.cells++
			if dzdx*dzdx+dzdy*dzdy < tanFlat*tanFlat {
				st.flat++
				continue
			}
			st.sloped++
			st.bins[octant(-dzdx, -dzdy, tan225)]++
		}
	}
	return st
}

// TestAspectStreamingMatchesReference checks the three-line streaming against a direct computation.
func TestAspectStreamingMatchesReference(t *testing.T) {
	for _, bb := range [][]float64{{116, 39.8, 116.02, 39.85}, {116, 39.8, 116.1, 39.82}, {116, 39.8, 116.0001, 39.8001}} {
		for _, id := range Coverages() {
			g, _ := newAspectGrid(bb, 30)
			t.Run(id+"/"+gridShape(g), func(t *testing.T) {
				f := &coverages[id].field
				got, want := analyzeAspect(f, g), referenceAspect(f, g)
				if got.cells != want.cells || got.flat != want.flat || got.bins != want.bins {
					t.Errorf("streamed %d cells flat %d bins %v; reference %d flat %d bins %v",
						got.cells, got.flat, got.bins, want.cells, want.flat, want.bins)
				}
			})
		}
	}
}

// TestAspectCellLimit checks the 4,000,000-cell limit at and just past it.
func TestAspectCellLimit(t *testing.T) {
	// At the equator (mid latitude 0) with 100 m cells: 2000 × 2000 cells fit,
	// 2001 × 2000 do not.
	w := 1999.5 * 100 / metersPerDegLon
	h := 1999.5 * 100 / metersPerDegLat / 2
	fits := AspectRequest{CoverageID: "dem_30m", BBox: []float64{0, -h, w, h}, ScaleM: 100}
	r, err := computeAspect(fits)
	if err != nil {
		t.Fatalf("4,000,000 cells: %v", err)
	}
	checkAspectInvariants(t, r)
	if r.CellCount != 4_000_000 {
		t.Errorf("cell_count = %d, want 4000000", r.CellCount)
	}

	w2 := 2000.5 * 100 / metersPerDegLon
	tooBig := AspectRequest{CoverageID: "dem_30m", BBox: []float64{0, -h, w2, h}, ScaleM: 100}
	_, err = computeAspect(tooBig)
	if err == nil || err.Code != CodeInvalidParams || !strings.Contains(err.Message, "4002000 cells (limit 4000000)") {
		t.Errorf("4,002,000 cells: %v, want 40001 region too large", err)
	}
	// The whole world at 1 m is far beyond the limit and must not be allocated.
	_, err = computeAspect(AspectRequest{CoverageID: "dem_30m", BBox: []float64{-180, -90, 180, 90}, ScaleM: 1})
	if err == nil || !strings.Contains(err.Message, "region too large for scale") {
		t.Errorf("world at 1 m: %v", err)
	}
}

// TestAspectErrors checks every invalid request and the field its message names.
func TestAspectErrors(t *testing.T) {
	ok := []float64{116, 39.8, 116.2, 40}
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name  string
		req   AspectRequest
		code  int
		field string
	}{
		{"empty coverage", AspectRequest{BBox: ok}, CodeInvalidParams, "coverage_id"},
		{"unknown coverage", AspectRequest{CoverageID: "dem_1m", BBox: ok}, CodeNotFound, `coverage "dem_1m" not found`},
		{"no bbox", AspectRequest{CoverageID: "dem_30m"}, CodeInvalidParams, "bbox"},
		{"3 numbers", AspectRequest{CoverageID: "dem_30m", BBox: ok[:3]}, CodeInvalidParams, "bbox"},
		{"5 numbers", AspectRequest{CoverageID: "dem_30m", BBox: append(slices.Clone(ok), 1)}, CodeInvalidParams, "bbox"},
		{"NaN", AspectRequest{CoverageID: "dem_30m", BBox: []float64{nan, 39.8, 116.2, 40}}, CodeInvalidParams, "bbox"},
		{"Inf", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, 39.8, inf, 40}}, CodeInvalidParams, "bbox"},
		{"lon < -180", AspectRequest{CoverageID: "dem_30m", BBox: []float64{-181, 39.8, 116.2, 40}}, CodeInvalidParams, "bbox"},
		{"lon > 180", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, 39.8, 180.5, 40}}, CodeInvalidParams, "bbox"},
		{"lat < -90", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, -91, 116.2, 40}}, CodeInvalidParams, "bbox"},
		{"lat > 90", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, 39.8, 116.2, 90.1}}, CodeInvalidParams, "bbox"},
		{"min_lon = max_lon", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, 39.8, 116, 40}}, CodeInvalidParams, "bbox"},
		{"min_lat > max_lat", AspectRequest{CoverageID: "dem_30m", BBox: []float64{116, 40, 116.2, 39.8}}, CodeInvalidParams, "bbox"},
		{"negative scale", AspectRequest{CoverageID: "dem_30m", BBox: ok, ScaleM: -30}, CodeInvalidParams, "scale_m"},
		{"scale below 1", AspectRequest{CoverageID: "dem_30m", BBox: ok, ScaleM: 0.5}, CodeInvalidParams, "scale_m"},
		{"scale above 10000", AspectRequest{CoverageID: "dem_30m", BBox: ok, ScaleM: 10001}, CodeInvalidParams, "scale_m"},
		{"NaN scale", AspectRequest{CoverageID: "dem_30m", BBox: ok, ScaleM: nan}, CodeInvalidParams, "scale_m"},
		{"Inf scale", AspectRequest{CoverageID: "dem_30m", BBox: ok, ScaleM: inf}, CodeInvalidParams, "scale_m"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := computeAspect(c.req)
			if err == nil {
				t.Fatalf("got %+v, want error %d", r, c.code)
			}
			if err.Code != c.code || !strings.Contains(err.Message, c.field) {
				t.Errorf("got %d %q, want %d naming %q", err.Code, err.Message, c.code, c.field)
			}
		})
	}
}

// TestAspectScaleBounds checks the scale_m bounds and default, and a degenerate polar sliver.
func TestAspectScaleBounds(t *testing.T) {
	for _, scale := range []float64{0, 1, 30, 10000} {
		bb := []float64{116, 39.8, 116.02, 39.82}
		r, err := computeAspect(AspectRequest{CoverageID: "dem_90m", BBox: bb, ScaleM: scale})
		if err != nil {
			t.Fatalf("scale %v: %v", scale, err)
		}
		checkAspectInvariants(t, r)
		want := scale
		if scale == 0 {
			want = aspectDefaultScaleM
		}
		if r.ScaleM != want {
			t.Errorf("scale %v: echoed %v", scale, r.ScaleM)
		}
	}
	// A degenerate sliver near the pole still answers finite numbers.
	r, err := computeAspect(AspectRequest{CoverageID: "dem_30m", BBox: []float64{-180, 89.999999, 180, 90}, ScaleM: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkAspectInvariants(t, r)
}

// BenchmarkAspect4MCells times the largest grid a request may ask for.
func BenchmarkAspect4MCells(b *testing.B) {
	w := 1999.5 * 100 / metersPerDegLon
	h := 1999.5 * 100 / metersPerDegLat / 2
	req := AspectRequest{CoverageID: "srtm_30m", BBox: []float64{0, -h, w, h}, ScaleM: 100}
	for b.Loop() {
		if _, err := computeAspect(req); err != nil {
			b.Fatal(err)
		}
	}
}
