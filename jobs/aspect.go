package jobs

import (
	"fmt"
	"math"
	"regexp"
)

// Aspect limits.
const (
	// DefaultScaleM is the platform's default cell size for aspect analysis.
	DefaultScaleM = 30
	// MinScaleM and MaxScaleM bound scale_m.
	MinScaleM = 1
	MaxScaleM = 10000
)

// coverageIDPattern is the shape of a coverage ID.
var coverageIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// AspectPayload asks the platform for a slope-aspect analysis of a coverage
// over a bounding box (POST /api/coverage/aspect).
type AspectPayload struct {
	// CoverageID names the elevation coverage, e.g. "dem_30m".
	CoverageID string `json:"coverage_id"`
	// BBox is [min_lon, min_lat, max_lon, max_lat] in degrees.
	BBox []float64 `json:"bbox"`
	// ScaleM is the cell size in metres (default 30).
	ScaleM float64 `json:"scale_m"`
}

// TaskType implements Payload.
func (AspectPayload) TaskType() string { return TypeAspect }

// Validate implements Payload. A zero ScaleM means the default.
func (p AspectPayload) Validate() error {
	if p.CoverageID == "" {
		return FieldErrorf("coverage_id", "is empty; name an elevation coverage such as dem_30m")
	}
	if !coverageIDPattern.MatchString(p.CoverageID) {
		return FieldErrorf("coverage_id", "%q is not a coverage ID (letters, digits, _ . -; at most 128)", Truncate(p.CoverageID, 40))
	}
	if err := validateBBox(p.BBox); err != nil {
		return err
	}
	if p.ScaleM != 0 && (math.IsNaN(p.ScaleM) || p.ScaleM < MinScaleM || p.ScaleM > MaxScaleM) {
		return FieldErrorf("scale_m", "must be between %d and %d metres, got %v", MinScaleM, MaxScaleM, p.ScaleM)
	}
	return nil
}

// WithDefaults returns the payload with ScaleM set when it was zero.
func (p AspectPayload) WithDefaults() AspectPayload {
	if p.ScaleM == 0 {
		p.ScaleM = DefaultScaleM
	}
	return p
}

func validateBBox(b []float64) error {
	if len(b) != 4 {
		return FieldErrorf("bbox", "must be 4 numbers [min_lon, min_lat, max_lon, max_lat], got %d", len(b))
	}
	names := [4]string{"min_lon", "min_lat", "max_lon", "max_lat"}
	for i, v := range b {
		field := fmt.Sprintf("bbox[%d]", i)
		limit := 180.0
		if i%2 == 1 {
			limit = 90
		}
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return FieldErrorf(field, "must be a finite number (%s), got %v", names[i], v)
		case v < -limit || v > limit:
			return FieldErrorf(field, "%s must be within [%v, %v], got %v", names[i], -limit, limit, v)
		}
	}
	minLon, minLat, maxLon, maxLat := b[0], b[1], b[2], b[3]
	switch {
	case minLon >= maxLon:
		return FieldErrorf("bbox", "min_lon %v must be less than max_lon %v", minLon, maxLon)
	case minLat >= maxLat:
		return FieldErrorf("bbox", "min_lat %v must be less than max_lat %v", minLat, maxLat)
	}
	return nil
}

// Truncate shortens s to at most n bytes for an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
