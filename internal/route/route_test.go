package route

import (
	"reflect"
	"testing"
)

func TestParseCommunities(t *testing.T) {
	tests := []struct {
		in      string
		large   bool
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "65000:100", want: []string{"65000:100"}},
		{in: " 65000:100 , 1:2", want: []string{"65000:100", "1:2"}},
		{in: "65536:1", wantErr: true},
		{in: "65000", wantErr: true},
		{in: "a:b", wantErr: true},
		{in: "65000:1:2", large: true, want: []string{"65000:1:2"}},
		{in: "4294967295:1:2", large: true, want: []string{"4294967295:1:2"}},
		{in: "4294967296:1:2", large: true, wantErr: true},
		{in: "65000:1", large: true, wantErr: true},
	}
	for _, tt := range tests {
		parse := ParseCommunities
		if tt.large {
			parse = ParseLargeCommunities
		}
		got, err := parse(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parse(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
