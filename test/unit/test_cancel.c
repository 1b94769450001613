/*
 * test_cancel.c - the per-thread cancel flags: one watched flag stops work
 * when set; flags watched together (work shared by several requests) stop
 * it only when every one is set; watching nothing never stops it.
 */
#include "unit.h"
#include "../../src/runtime/cancel.h"

/* One flag, then three together (two set is not enough), then none. */
UNIT_TEST(test_cancel_flags_watched_together)
{
	volatile int a = 0,
				b = 0,
				c = 0;
	const volatile int *three[3] = {&a, &b, &c};

	CHECK(!groma_cancel_requested() && groma_cancel_check().code == GROMA_OK);
	groma_cancel_watch(&a);
	CHECK(!groma_cancel_requested());
	a = 1;
	CHECK(groma_cancel_requested() && groma_cancel_check().code == GROMA_ERR_CANCELLED);
	a = 0;
	groma_cancel_watch_all(three, 3);
	b = 1;
	c = 1;
	CHECKF(!groma_cancel_requested(), "two of three set must not stop shared work");
	a = 1;
	CHECKF(groma_cancel_requested() && groma_cancel_check().code == GROMA_ERR_CANCELLED,
		   "every one set stops it");
	groma_cancel_watch_all(three, 0);
	CHECKF(!groma_cancel_requested(), "watching no flags never stops work");
	groma_cancel_watch(&a);
	CHECK(groma_cancel_requested());
	groma_cancel_watch(NULL);
	CHECK(!groma_cancel_requested() && groma_cancel_check().code == GROMA_OK);
}
