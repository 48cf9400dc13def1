package tracer

import "github.com/katrace/katrace/filter"

// Filters are applied in the kernel: constants set before load.
type Filters = filter.Set

// CgroupFilter names a cgroup for --container and --cgroup.
type CgroupFilter = filter.Cgroup
