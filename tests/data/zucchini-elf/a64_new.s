	.text
	.global entry
entry:
	stp	x29, x30, [sp, #-16]!
	bl	f1
	cbz	x0, 1f
	tbz	x0, #3, 1f
	b.eq	f2
	bl	f2
	bl	f3
1:	ldp	x29, x30, [sp], #16
	ret
f1:	add	x0, x0, x1
	ret
f3:	mul	x0, x0, x1
	b	f1
f2:	sub	x0, x0, x1
	ret
	.data
	.balign	8
	.global	table
table:	.quad	f1, f2, f3, entry
