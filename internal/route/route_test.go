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

func TestCheckCommunitySize(t *testing.T) {
	list := func(n int, item string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = item
		}
		return out
	}
	tests := []struct {
		communities, large int
		ok                 bool
	}{
		{0, 0, true}, {512, 0, true}, {513, 0, false}, {0, 170, true}, {0, 171, false}, {257, 85, true}, {258, 85, false},
	}
	for _, tc := range tests {
		err := CheckCommunitySize(list(tc.communities, "65000:1"), list(tc.large, "65000:1:1"))
		if (err == nil) != tc.ok {
			t.Errorf("%d communities and %d large: err %v, want ok=%t", tc.communities, tc.large, err, tc.ok)
		}
	}
}
