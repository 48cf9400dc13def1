package tracer

import "github.com/katrace/katrace/filter"

// Filters are applied in the kernel: constants set before load.
type Filters = filter.Set
