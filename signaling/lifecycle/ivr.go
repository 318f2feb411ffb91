package lifecycle

import "slices"

// IVR (signaling/ivr runs the menus): the record keeps the path.

// MaxIVRPath bounds Rec.IVRPath.
const MaxIVRPath = 32

// IVRVisited: the caller entered an IVR node.
type IVRVisited struct {
	When
	Node string
}

func (t *step) applyIVR(ev Event) (bool, error) {
	c := &t.c
	switch e := ev.(type) {
	case IVRVisited:
		if c.State != StateWaiting || len(c.Rec.IVRPath) >= MaxIVRPath {
			return true, nil
		}
		c.Rec.IVRPath = append(slices.Clone(c.Rec.IVRPath), e.Node)
		t.do(Persist{})
	default:
		return false, nil
	}
	return true, nil
}
