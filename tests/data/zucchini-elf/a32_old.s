	.syntax unified
	.arm
	.text
	.global entry
entry:
	push	{r4, lr}
	bl	f1
	bl	f2
	cmp	r0, #2
	beq	1f
	bl	f1
1:	pop	{r4, pc}
f1:	add	r0, r0, r1
	bx	lr
f2:	sub	r0, r0, r1
	bx	lr
	.data
	.global	table
table:	.word	f1, f2, entry
