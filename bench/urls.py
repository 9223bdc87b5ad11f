"""No views: the benchmarks serve nothing, and do not depend on the demo's URLs."""

urlpatterns: list[object] = []
