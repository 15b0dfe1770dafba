package jobs_test

import (
	"errors"
	"math"
	"testing"

	"github.com/mcpjobs/mcpjobs/jobs"
)

func TestAspectPayloadValidate(t *testing.T) {
	ok := []float64{116.0, 39.8, 116.1, 39.9}
	tests := []struct {
		name  string
		p     jobs.AspectPayload
		field string // "" when valid
	}{
		{"valid", jobs.AspectPayload{CoverageID: "dem_30m", BBox: ok}, ""},
		{"valid with scale", jobs.AspectPayload{CoverageID: "dem_30m", BBox: ok, ScaleM: 90}, ""},
		{"empty coverage", jobs.AspectPayload{BBox: ok}, "coverage_id"},
		{"bad coverage", jobs.AspectPayload{CoverageID: "dem 30m;DROP", BBox: ok}, "coverage_id"},
		{"no bbox", jobs.AspectPayload{CoverageID: "dem_30m"}, "bbox"},
		{"NaN in bbox", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{math.NaN(), 0, 1, 1}}, "bbox[0]"},
		{"Inf in bbox", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{0, 0, math.Inf(1), 1}}, "bbox[2]"},
		{"min_lat above max_lat", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{0, 2, 1, 1}}, "bbox"},
		{"longitude 200", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{0, 0, 200, 1}}, "bbox[2]"},
		{"scale too small", jobs.AspectPayload{CoverageID: "dem_30m", BBox: ok, ScaleM: 0.5}, "scale_m"},
		{"scale NaN", jobs.AspectPayload{CoverageID: "dem_30m", BBox: ok, ScaleM: math.NaN()}, "scale_m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *jobs.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, jobs.ErrInvalid) {
				t.Fatalf("error = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}
