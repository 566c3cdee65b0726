	.syntax unified
	.thumb
	.text
	.global entry
	.thumb_func
entry:
	push	{r4, lr}
	bl	f1
	bl	f2
	bl	f3
	cmp	r0, #2
	beq.n	1f
	bne.w	2f
	b.n	1f
2:	bl	f1
	b.w	f2
1:	pop	{r4, pc}
	.thumb_func
f1:	adds	r0, r0, r1
	bx	lr
	.thumb_func
f3:	muls	r0, r1, r0
	b.n	f1
	.thumb_func
f2:	subs	r0, r0, r1
	bx	lr
	.data
	.global	table
table:	.word	f1, f2, f3, entry
