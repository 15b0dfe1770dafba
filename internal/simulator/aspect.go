package simulator

import (
	"maps"
	"math"
	"slices"
)

// Limits and constants of the slope-aspect analysis.
const (
	// aspectDefaultScaleM is the scale used when a request gives none.
	aspectDefaultScaleM = 30
	// aspectMinScaleM is the smallest scale_m accepted.
	aspectMinScaleM = 1
	// aspectMaxScaleM is the largest scale_m accepted.
	aspectMaxScaleM = 10000
	// aspectMaxCells is the largest grid one request may analyse.
	aspectMaxCells = 4_000_000
	// aspectFlatSlopeDeg is the slope below which a cell counts as flat.
	aspectFlatSlopeDeg = 1.0
	// metersPerDegLat is the length of one degree of latitude.
	metersPerDegLat = 110540.0
	// metersPerDegLon is the length of one degree of longitude at the equator.
	metersPerDegLon = 111320.0
)

// aspectBins are the histogram keys of the eight compass directions in
// clockwise order from north; the ninth key is "flat".
var aspectBins = [8]string{"N", "NE", "E", "SE", "S", "SW", "W", "NW"}

// demTerm is one separable component fx(x)·fy(y) of a synthetic elevation
// field; x and y are meters east and north of (0°, 0°) on an equirectangular
// plane: x = lon·metersPerDegLon, y = lat·metersPerDegLat.
type demTerm struct {
	fx func(x float64) float64
	fy func(y float64) float64
}

// demField is a synthetic elevation model: base plus the sum of its terms,
// clamped from below at floor. The clamp makes flat plateaus (lake beds,
// valley floors) wherever the smooth surface dips under it.
type demField struct {
	base  float64
	floor float64
	terms []demTerm
}

// at answers the elevation in meters at longitude lon and latitude lat.
func (f *demField) at(lon, lat float64) float64 {
	x, y := lon*metersPerDegLon, lat*metersPerDegLat
	z := f.base
	for _, t := range f.terms {
		z += t.fx(x) * t.fy(y)
	}
	return max(z, f.floor)
}

// demCoverage is one elevation coverage of the simulated platform.
type demCoverage struct {
	nativeScaleM float64
	field        demField
}

// coverages are the elevation coverages the simulated platform knows, by id.
// dem_30m and srtm_30m share one landscape (srtm adds radar speckle and has a
// slightly different water level); dem_90m is the same landscape without the
// shortest wavelengths, as a coarser model smooths them away.
var coverages = map[string]*demCoverage{
	"dem_30m":  {nativeScaleM: 30, field: demField{base: 1200, floor: 1200 - 330, terms: terrainTerms(true, false)}},
	"dem_90m":  {nativeScaleM: 90, field: demField{base: 1200, floor: 1200 - 330, terms: terrainTerms(false, false)}},
	"srtm_30m": {nativeScaleM: 30, field: demField{base: 1195, floor: 1195 - 320, terms: terrainTerms(true, true)}},
}

// Coverages answers the ids of the known elevation coverages, sorted.
func Coverages() []string {
	return slices.Sorted(maps.Keys(coverages))
}

// sinWave answers v ↦ amp·sin(2πv/wavelength + phase).
func sinWave(amp, wavelength, phase float64) func(float64) float64 {
	k := 2 * math.Pi / wavelength
	return func(v float64) float64 { return amp * math.Sin(k*v+phase) }
}

// cosWave answers v ↦ amp·cos(2πv/wavelength + phase).
func cosWave(amp, wavelength, phase float64) func(float64) float64 {
	k := 2 * math.Pi / wavelength
	return func(v float64) float64 { return amp * math.Cos(k*v+phase) }
}

// constOne is the factor of a term that depends on one axis only.
func constOne(float64) float64 { return 1 }

// terrainTerms builds the shared landscape: a regional tilt and swell
// (hundreds of kilometres), basins, hills (about ten kilometres) and ridges.
// detail adds the wavelengths of two kilometres and less; speckle adds the
// short-wavelength noise of a radar-derived model.
func terrainTerms(detail, speckle bool) []demTerm {
	ts := []demTerm{
		{sinWave(260, 420e3, 0.7), constOne},               // regional west-east tilt
		{constOne, cosWave(180, 360e3, 2.1)},               // regional north-south tilt
		{sinWave(160, 95e3, 0.3), cosWave(1, 120e3, 1.1)},  // basins and uplands
		{sinWave(110, 11e3, 1.9), cosWave(1, 13.5e3, 0.4)}, // hills
		{cosWave(60, 4.7e3, 0.2), sinWave(1, 5.3e3, 2.6)},  // ridges
		{sinWave(1, 23e3, 0.9), sinWave(40, 7.9e3, 1.3)},   // oblique valleys
	}
	if detail {
		ts = append(ts, demTerm{sinWave(14, 1.9e3, 0.5), cosWave(1, 2.3e3, 1.7)}) // gullies
	}
	if speckle {
		ts = append(ts, demTerm{sinWave(3, 0.7e3, 2.2), sinWave(1, 0.8e3, 0.8)})
	}
	return ts
}

// aspectGrid is the cell grid of one request: cols×rows square cells of
// cellM meters, the first one's north-west corner at (minLon, maxLat).
type aspectGrid struct {
	cols, rows     int
	minLon, maxLat float64
	dLon, dLat     float64 // cell size in degrees
	cellM          float64
}

// lon answers the longitude of the centre of column j (j may be -1 or cols).
func (g *aspectGrid) lon(j int) float64 { return g.minLon + (float64(j)+0.5)*g.dLon }

// lat answers the latitude of the centre of row i (row 0 is the northernmost).
func (g *aspectGrid) lat(i int) float64 { return g.maxLat - (float64(i)+0.5)*g.dLat }

// aspectStats are the counts of one analysis.
type aspectStats struct {
	cells  int
	bins   [8]int // by aspectBins
	flat   int
	sumE   float64 // sum of the unit downhill vectors of the non-flat cells
	sumN   float64
	sloped int
}

// computeAspect runs the slope-aspect analysis of POST /api/coverage/aspect.
func computeAspect(req AspectRequest) (*AspectResult, *Error) {
	if req.CoverageID == "" {
		return nil, invalidf("coverage_id is required (coverages: %s)", coverageList())
	}
	if err := checkBBox(req.BBox); err != nil {
		return nil, err
	}
	scale := req.ScaleM
	if scale == 0 {
		scale = aspectDefaultScaleM
	}
	if math.IsNaN(scale) || math.IsInf(scale, 0) || scale < aspectMinScaleM || scale > aspectMaxScaleM {
		return nil, invalidf("scale_m must be a number between %d and %d, got %v", aspectMinScaleM, aspectMaxScaleM, req.ScaleM)
	}
	cov, ok := coverages[req.CoverageID]
	if !ok {
		return nil, notFoundf("coverage %q not found", req.CoverageID)
	}
	g, cells := newAspectGrid(req.BBox, scale)
	if cells > aspectMaxCells {
		return nil, invalidf("region too large for scale: %d cells (limit %d); use a larger scale_m or a smaller bbox", cells, aspectMaxCells)
	}
	st := analyzeAspect(&cov.field, g)
	return aspectResult(req.CoverageID, req.BBox, scale, st), nil
}

// coverageList answers the coverage ids for messages.
func coverageList() string {
	s := ""
	for i, id := range Coverages() {
		if i > 0 {
			s += ", "
		}
		s += id
	}
	return s
}

// checkBBox validates [min_lon, min_lat, max_lon, max_lat].
func checkBBox(b []float64) *Error {
	if len(b) != 4 {
		return invalidf("bbox must be 4 numbers [min_lon, min_lat, max_lon, max_lat], got %d", len(b))
	}
	for _, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return invalidf("bbox values must be finite numbers")
		}
	}
	switch {
	case b[0] < -180 || b[0] > 180 || b[2] < -180 || b[2] > 180:
		return invalidf("bbox longitudes must be within [-180, 180], got %v and %v", b[0], b[2])
	case b[1] < -90 || b[1] > 90 || b[3] < -90 || b[3] > 90:
		return invalidf("bbox latitudes must be within [-90, 90], got %v and %v", b[1], b[3])
	case b[0] >= b[2]:
		return invalidf("bbox min_lon (%v) must be less than max_lon (%v)", b[0], b[2])
	case b[1] >= b[3]:
		return invalidf("bbox min_lat (%v) must be less than max_lat (%v)", b[1], b[3])
	}
	return nil
}

// newAspectGrid lays square cells of scale meters over a valid bbox and
// answers the grid and its cell count (which may exceed the limit; then the
// grid must not be analysed).
func newAspectGrid(b []float64, scale float64) (aspectGrid, int64) {
	midLat := (b[1] + b[3]) / 2
	mPerDegLon := metersPerDegLon * math.Cos(midLat*math.Pi/180)
	widthM := (b[2] - b[0]) * mPerDegLon
	heightM := (b[3] - b[1]) * metersPerDegLat
	cols := max(int64(math.Ceil(widthM/scale)), 1)
	rows := max(int64(math.Ceil(heightM/scale)), 1)
	g := aspectGrid{
		minLon: b[0], maxLat: b[3],
		dLon: scale / mPerDegLon, dLat: scale / metersPerDegLat,
		cellM: scale,
	}
	cells := cols * rows
	if cells <= aspectMaxCells {
		g.cols, g.rows = int(cols), int(rows)
	}
	return g, cells
}

// analyzeAspect computes slope and aspect of every cell of g by Horn's
// method. It streams the grid in lines across its shorter side and keeps
// only three lines of elevations (plus a one-cell border) in memory.
func analyzeAspect(f *demField, g aspectGrid) aspectStats {
	// Normally a line is a row (north to south) and k runs west to east;
	// transposed, a line is a column (west to east) and k runs north to south.
	transposed := g.cols > g.rows
	lines, across := g.rows, g.cols
	if transposed {
		lines, across = g.cols, g.rows
	}
	w := across + 2
	nt := len(f.terms)

	// The factor of each term that varies across a line, per position.
	acr := make([]float64, nt*w)
	for t, term := range f.terms {
		row := acr[t*w : (t+1)*w]
		for k := range w {
			if transposed {
				row[k] = term.fy(g.lat(k-1) * metersPerDegLat)
			} else {
				row[k] = term.fx(g.lon(k-1) * metersPerDegLon)
			}
		}
	}
	fill := func(buf []float64, line int) {
		for k := range buf {
			buf[k] = f.base
		}
		for t, term := range f.terms {
			var a float64
			if transposed {
				a = term.fx(g.lon(line) * metersPerDegLon)
			} else {
				a = term.fy(g.lat(line) * metersPerDegLat)
			}
			row := acr[t*w : (t+1)*w]
			for k, v := range row {
				buf[k] += v * a
			}
		}
		for k, z := range buf {
			if z < f.floor {
				buf[k] = f.floor
			}
		}
	}

	p, c, n := make([]float64, w), make([]float64, w), make([]float64, w)
	fill(p, -1)
	fill(c, 0)
	inv := 1 / (8 * g.cellM)
	tanFlat := math.Tan(aspectFlatSlopeDeg * math.Pi / 180)
	flat2 := tanFlat * tanFlat
	tan225 := math.Tan(22.5 * math.Pi / 180)

	var st aspectStats
	st.cells = lines * across
	for line := range lines {
		fill(n, line+1)
		for k := 1; k <= across; k++ {
			gAcross := (p[k+1] + 2*c[k+1] + n[k+1]) - (p[k-1] + 2*c[k-1] + n[k-1])
			gAlong := (n[k-1] + 2*n[k] + n[k+1]) - (p[k-1] + 2*p[k] + p[k+1])
			var dzdx, dzdy float64 // rise per meter east and north
			if transposed {
				dzdx, dzdy = gAlong*inv, -gAcross*inv
			} else {
				dzdx, dzdy = gAcross*inv, -gAlong*inv
			}
			m2 := dzdx*dzdx + dzdy*dzdy
			if !(m2 >= flat2) {
				st.flat++
				continue
			}
			e, nn := -dzdx, -dzdy // downhill: the direction the slope faces
			m := math.Sqrt(m2)
			st.sumE += e / m
			st.sumN += nn / m
			st.sloped++
			st.bins[octant(e, nn, tan225)]++
		}
		p, c, n = c, n, p
	}
	return st
}

// octant answers the compass sector (0 = N, 1 = NE, … 7 = NW) of the vector
// (e east, n north), each sector 45° wide and centred on its direction.
func octant(e, n, tan225 float64) int {
	ae, an := math.Abs(e), math.Abs(n)
	switch {
	case ae <= tan225*an: // within 22.5° of the north-south axis
		if n > 0 {
			return 0
		}
		return 4
	case an <= tan225*ae: // within 22.5° of the east-west axis
		if e > 0 {
			return 2
		}
		return 6
	case e > 0 && n > 0:
		return 1
	case e > 0:
		return 3
	case n < 0:
		return 5
	default:
		return 7
	}
}

// aspectResult turns the counts into the answer.
func aspectResult(id string, bbox []float64, scale float64, st aspectStats) *AspectResult {
	total := float64(st.cells)
	hist := make(map[string]float64, 9)
	for i, key := range aspectBins {
		hist[key] = float64(st.bins[i]) / total
	}
	hist["flat"] = float64(st.flat) / total
	mean := 0.0
	if st.sloped > 0 && (st.sumE != 0 || st.sumN != 0) {
		mean = math.Atan2(st.sumE, st.sumN) * 180 / math.Pi
		if mean < 0 {
			mean += 360
		}
		mean = math.Round(mean*10) / 10
		if mean >= 360 {
			mean = 0
		}
	}
	return &AspectResult{
		CoverageID:    id,
		BBox:          slices.Clone(bbox),
		ScaleM:        scale,
		CellCount:     st.cells,
		FlatFraction:  hist["flat"],
		MeanAspectDeg: mean,
		Histogram:     hist,
	}
}
